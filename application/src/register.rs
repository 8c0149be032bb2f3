//! Use case: create a user account.

use domain::{NewUser, Password, PasswordHash, Roles, User, UserId, Username};

use crate::ports::CreateUserError;
use crate::{TokenWarden, Unexpected};

/// A validated registration.
#[derive(Debug, Clone)]
pub struct RegisterInput {
    pub username: Username,
    pub password: Password,
    pub roles: Roles,
}

/// Whether anyone may create an account (`POST /auth/register`), or only
/// admins and the operator (`TOKENWARDEN_REGISTRATION`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RegistrationPolicy {
    #[default]
    Open,
    Closed,
}

impl RegistrationPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("username taken")]
    UsernameTaken,
    /// Self-registration is closed ([`RegistrationPolicy::Closed`]).
    #[error("registration closed")]
    Closed,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl TokenWarden {
    /// Hashes the password and stores the user.
    ///
    /// # Errors
    /// [`RegisterError::UsernameTaken`] when the name exists in any case.
    pub fn register(&self, input: RegisterInput) -> Result<User, RegisterError> {
        let password_hash = self
            .ports
            .hasher
            .hash(&input.password)
            .map_err(Unexpected::from)?;
        self.store_new_user(input.username, password_hash, input.roles)
            .map_err(|e| match e {
                CreateUserError::UsernameTaken => RegisterError::UsernameTaken,
                CreateUserError::Store(e) => RegisterError::Unexpected(e.into()),
            })
    }

    /// Whether a client may register itself: [`RegisterError::Closed`]
    /// under [`RegistrationPolicy::Closed`]. Asked before anything is
    /// counted or hashed.
    ///
    /// # Errors
    /// [`RegisterError::Closed`].
    pub fn admit_self_registration(&self) -> Result<(), RegisterError> {
        match self.registration {
            RegistrationPolicy::Open => Ok(()),
            RegistrationPolicy::Closed => Err(RegisterError::Closed),
        }
    }

    pub(crate) fn store_new_user(
        &self,
        username: Username,
        password_hash: PasswordHash,
        roles: Roles,
    ) -> Result<User, CreateUserError> {
        self.ports.users.create(NewUser {
            id: UserId::from_random_bytes(self.ports.random.id_bytes()),
            username,
            password_hash,
            roles,
            created_at: self.ports.clock.now(),
        })
    }
}

#[cfg(test)]
mod tests {
    use domain::{PasswordHash, Role};

    use super::*;
    use crate::test_support::{alice, crypto_broken, nth_id_bytes, store_down, Mocks, NOW};

    fn input() -> RegisterInput {
        RegisterInput {
            username: Username::parse("Alice").unwrap(),
            password: Password::parse("correct horse battery staple".to_owned()).unwrap(),
            roles: Roles::new([Role::admin(), Role::user()]),
        }
    }

    fn hash() -> PasswordHash {
        PasswordHash::new("$argon2id$hashed".to_owned())
    }

    /// A hasher that hashes exactly the registered password, once.
    fn hashing(m: &mut Mocks) {
        m.hasher
            .expect_hash()
            .withf(|p| p.expose() == "correct horse battery staple")
            .times(1)
            .returning(|_| Ok(hash()));
    }

    #[test]
    fn a_registration_stores_the_hashed_password_with_a_fresh_id_and_the_current_time() {
        let mut m = Mocks::new();
        hashing(&mut m);
        let stored = User {
            username: Username::parse("Alice").unwrap(),
            ..alice()
        };
        let returned = stored.clone();
        m.users
            .expect_create()
            .withf(|u| {
                u.id == UserId::from_random_bytes(nth_id_bytes(1))
                    && u.username.as_str() == "Alice"
                    && u.password_hash == hash()
                    && u.roles == Roles::new([Role::admin(), Role::user()])
                    && u.created_at == NOW
            })
            .times(1)
            .returning(move |_| Ok(returned.clone()));

        assert_eq!(m.build().register(input()), Ok(stored));
    }

    #[test]
    fn closed_registration_refuses_before_any_work() {
        let warden = Mocks::untouchable()
            .build()
            .with_registration(RegistrationPolicy::Closed);
        assert_eq!(warden.admit_self_registration(), Err(RegisterError::Closed));
        let open = Mocks::untouchable().build();
        assert_eq!(open.admit_self_registration(), Ok(()));
    }

    #[test]
    fn a_taken_username_is_reported_as_username_taken() {
        let mut m = Mocks::new();
        hashing(&mut m);
        m.users
            .expect_create()
            .times(1)
            .returning(|_| Err(CreateUserError::UsernameTaken));

        assert_eq!(
            m.build().register(input()),
            Err(RegisterError::UsernameTaken)
        );
    }

    #[test]
    fn a_store_failure_while_creating_the_user_is_unexpected_store() {
        let mut m = Mocks::new();
        hashing(&mut m);
        m.users
            .expect_create()
            .times(1)
            .returning(|_| Err(CreateUserError::Store(store_down())));

        assert_eq!(
            m.build().register(input()),
            Err(RegisterError::Unexpected(Unexpected::Store(store_down())))
        );
    }

    #[test]
    fn a_hasher_failure_is_unexpected_crypto_and_stores_nothing() {
        let mut m = Mocks::new();
        m.hasher
            .expect_hash()
            .times(1)
            .returning(|_| Err(crypto_broken()));
        m.users.expect_create().never();

        assert_eq!(
            m.build().register(input()),
            Err(RegisterError::Unexpected(Unexpected::Crypto(
                crypto_broken()
            )))
        );
    }
}
