//! Use case: create a user account.

use domain::{NewUser, Password, Roles, User, UserId, Username};

use crate::ports::CreateUserError;
use crate::{TokenWarden, Unexpected};

/// A validated registration.
#[derive(Debug, Clone)]
pub struct RegisterInput {
    pub username: Username,
    pub password: Password,
    pub roles: Roles,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("username taken")]
    UsernameTaken,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl TokenWarden {
    /// Hashes the password and stores the user.
    ///
    /// # Errors
    /// [`RegisterError::UsernameTaken`] when the name exists in any case.
    pub fn register(&self, input: RegisterInput) -> Result<User, RegisterError> {
        let password_hash = self.ports.hasher.hash(&input.password).map_err(Unexpected::from)?;
        let user = NewUser {
            id: UserId::from_random_bytes(self.ports.random.id_bytes()),
            username: input.username,
            password_hash,
            roles: input.roles,
            created_at: self.ports.clock.now(),
        };
        self.ports.users.create(user).map_err(|e| match e {
            CreateUserError::UsernameTaken => RegisterError::UsernameTaken,
            CreateUserError::Store(e) => RegisterError::Unexpected(e.into()),
        })
    }
}
