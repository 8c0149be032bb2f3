//! Use cases of the account lifecycle: a user changes their password; an
//! admin (or the operator, on the command line) lists, creates, reads,
//! changes, resets and deletes accounts.
//!
//! Who may do what to whom, and what each change revokes, is the domain's
//! ([`domain::account`]); the repository plans and executes a change under
//! the user's lock ([`crate::ports::UserRepository::update`]). What is
//! left here: checking the caller, hashing passwords (one argon2 hash per
//! change), and putting what was revoked on the revocation list.

use std::time::Duration;

use domain::{
    AccountChange, AccountRuleError, Actor, CursorKey, NameCursor, PageLimit, Password, Roles,
    User, UserId, Username, UsernamePrefix,
};

use crate::admin::{require_admin, AdminError, Page};
use crate::ports::{AccountUpdate, CreateUserError, UpdateAccountError, UserQuery};
use crate::rate_limit::{user_key, Admission};
use crate::{Principal, RegisterInput, SessionView, TokenWarden, Unexpected};

/// Who manages an account: an admin through the API (checked for the role
/// `admin`), or the operator on the command line (trusted).
#[derive(Debug, Clone, Copy)]
pub enum Manager<'a> {
    Admin(&'a Principal),
    Operator,
}

impl Manager<'_> {
    fn actor(self) -> Result<Actor, AdminError> {
        match self {
            Self::Admin(principal) => {
                require_admin(principal)?;
                Ok(Actor::Admin(principal.user_id))
            }
            Self::Operator => Ok(Actor::Operator),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangePasswordError {
    /// The current password is wrong (counted by the login limit).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The username is over its login limit: refused before any check.
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// A user as an admin sees them, with their live sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDetail {
    pub user: User,
    /// Most recently used first; `current` is always `false`.
    pub sessions: Vec<SessionView>,
}

/// Changes an admin asks for in one request (`PATCH /admin/users/{id}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    pub roles: Option<Roles>,
    pub disabled: Option<bool>,
}

impl UserPatch {
    pub fn is_empty(&self) -> bool {
        self.roles.is_none() && self.disabled.is_none()
    }

    fn changes(self) -> Vec<AccountChange> {
        let mut changes = Vec::new();
        if let Some(roles) = self.roles {
            changes.push(AccountChange::SetRoles(roles));
        }
        match self.disabled {
            Some(true) => changes.push(AccountChange::Disable),
            Some(false) => changes.push(AccountChange::Enable),
            None => {}
        }
        changes
    }
}

fn update_error(e: UpdateAccountError) -> AdminError {
    match e {
        UpdateAccountError::NotFound => AdminError::UserNotFound,
        UpdateAccountError::Refused(AccountRuleError::SelfLockout) => AdminError::SelfLockout,
        UpdateAccountError::Refused(AccountRuleError::NotPermitted) => AdminError::Forbidden,
        UpdateAccountError::Store(e) => e.into(),
    }
}

impl TokenWarden {
    /// The caller replaces their password: the current one is checked
    /// under the login limit of their username (so this cannot be used to
    /// guess it), then every *other* session of theirs is revoked (event
    /// `password_changed`).
    ///
    /// # Errors
    /// [`ChangePasswordError::RateLimited`] while the username is limited,
    /// whatever the password; [`ChangePasswordError::InvalidCredentials`]
    /// for a wrong current password.
    pub fn change_password(
        &self,
        principal: &Principal,
        current: String,
        new: Password,
    ) -> Result<(), ChangePasswordError> {
        let user = self
            .ports
            .users
            .find(principal.user_id)
            .map_err(Unexpected::from)?
            .ok_or(ChangePasswordError::InvalidCredentials)?;
        let key = user_key(&user.username);
        if let Admission::Limited { retry_after } =
            self.login_limiter
                .reserve(Some(&key), None, self.ports.clock.now())
        {
            return Err(ChangePasswordError::RateLimited { retry_after });
        }
        let stored = self
            .ports
            .users
            .find_credentials(&user.username)
            .map_err(Unexpected::from)?;
        let verified = match (Password::parse(current), &stored) {
            (Ok(current), Some((_, hash))) => self
                .ports
                .hasher
                .verify(&current, Some(hash))
                .map_err(Unexpected::from)?,
            _ => false,
        };
        if !verified {
            // The reservation stays: it is the failure's count.
            return Err(ChangePasswordError::InvalidCredentials);
        }
        self.login_limiter.reset(&key);
        let hash = self.ports.hasher.hash(&new).map_err(Unexpected::from)?;
        let now = self.ports.clock.now();
        let updated = self
            .ports
            .users
            .update(AccountUpdate {
                user: user.id,
                actor: Actor::User {
                    id: principal.user_id,
                    session: principal.session_id,
                },
                changes: vec![AccountChange::PasswordChanged(hash)],
                now,
            })
            .map_err(|e| match e {
                UpdateAccountError::Store(e) => ChangePasswordError::Unexpected(e.into()),
                // Gone or refused meanwhile: the caller's account is no more.
                UpdateAccountError::NotFound | UpdateAccountError::Refused(_) => {
                    ChangePasswordError::InvalidCredentials
                }
            })?;
        self.publish_revoked_sessions(&updated.revoked, now);
        Ok(())
    }

    /// A page of users by username (case-insensitive), optionally only
    /// those starting with `prefix`.
    ///
    /// # Errors
    /// [`AdminError::Forbidden`], [`AdminError::InvalidCursor`] (a cursor
    /// of another query), or [`AdminError::Unexpected`].
    pub fn list_users(
        &self,
        manager: Manager<'_>,
        prefix: Option<UsernamePrefix>,
        before: Option<&str>,
        limit: PageLimit,
    ) -> Result<Page<User>, AdminError> {
        manager.actor()?;
        let scope = format!(
            "users:{}",
            prefix.as_ref().map_or("", UsernamePrefix::as_str)
        );
        let key = CursorKey::derive(&self.settings.refresh_secret);
        let after = before
            .map(|text| NameCursor::open(text, &key, &scope).map_err(|_| AdminError::InvalidCursor))
            .transpose()?
            .map(|c| c.0);
        let mut items = self.ports.users.list(&UserQuery {
            prefix,
            after,
            limit: limit.get().saturating_add(1),
        })?;
        let limit = usize::try_from(limit.get()).unwrap_or(usize::MAX);
        let next = if items.len() > limit {
            items.truncate(limit);
            items
                .last()
                .map(|last| NameCursor(last.username.canonical()).seal(&key, &scope))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// Creates a user with the given roles.
    ///
    /// # Errors
    /// [`AdminError::Forbidden`], [`AdminError::UsernameTaken`], or
    /// [`AdminError::Unexpected`].
    pub fn create_user(
        &self,
        manager: Manager<'_>,
        input: RegisterInput,
    ) -> Result<User, AdminError> {
        manager.actor()?;
        let hash = self
            .ports
            .hasher
            .hash(&input.password)
            .map_err(Unexpected::from)?;
        self.store_new_user(input.username, hash, input.roles)
            .map_err(|e| match e {
                CreateUserError::UsernameTaken => AdminError::UsernameTaken,
                CreateUserError::Store(e) => e.into(),
            })
    }

    /// The user with their live sessions.
    ///
    /// # Errors
    /// [`AdminError::Forbidden`], [`AdminError::UserNotFound`], or
    /// [`AdminError::Unexpected`].
    pub fn user_detail(
        &self,
        manager: Manager<'_>,
        user: UserId,
    ) -> Result<UserDetail, AdminError> {
        manager.actor()?;
        let user = self
            .ports
            .users
            .find(user)?
            .ok_or(AdminError::UserNotFound)?;
        let idle = self.settings.lifetimes.idle_ttl;
        let sessions = self
            .ports
            .sessions
            .list_live(user.id, idle, self.ports.clock.now())?
            .into_iter()
            .map(|session| SessionView {
                current: false,
                expires_at: session.refresh_expires_at(idle),
                session,
            })
            .collect();
        Ok(UserDetail { user, sessions })
    }

    /// The user with this username (any letter case), if any.
    ///
    /// # Errors
    /// [`AdminError::Forbidden`] or [`AdminError::Unexpected`].
    pub fn find_user(
        &self,
        manager: Manager<'_>,
        username: &Username,
    ) -> Result<Option<User>, AdminError> {
        manager.actor()?;
        Ok(self
            .ports
            .users
            .find_credentials(username)?
            .map(|(user, _)| user))
    }

    /// Changes roles and/or the disabled state; returns the user as it now
    /// is. Disabling, and taking a role away, revoke every session.
    ///
    /// # Errors
    /// [`AdminError::Forbidden`], [`AdminError::UserNotFound`],
    /// [`AdminError::SelfLockout`] (an admin disabling themselves or
    /// dropping their own `admin` role), or [`AdminError::Unexpected`].
    pub fn update_user(
        &self,
        manager: Manager<'_>,
        user: UserId,
        patch: UserPatch,
    ) -> Result<User, AdminError> {
        let actor = manager.actor()?;
        self.apply(actor, user, patch.changes())?
            .ok_or(AdminError::UserNotFound)
    }

    /// Sets a new password and revokes every session (event
    /// `password_reset`).
    ///
    /// # Errors
    /// [`AdminError::Forbidden`], [`AdminError::UserNotFound`], or
    /// [`AdminError::Unexpected`].
    pub fn reset_password(
        &self,
        manager: Manager<'_>,
        user: UserId,
        password: &Password,
    ) -> Result<(), AdminError> {
        let actor = manager.actor()?;
        // No hashing for an unknown user.
        self.ports
            .users
            .find(user)?
            .ok_or(AdminError::UserNotFound)?;
        let hash = self.ports.hasher.hash(password).map_err(Unexpected::from)?;
        self.apply(actor, user, vec![AccountChange::PasswordReset(hash)])?;
        Ok(())
    }

    /// Deletes the user with their sessions and tokens (event
    /// `user_deleted`); audit rows and events stay until their retention.
    ///
    /// # Errors
    /// [`AdminError::Forbidden`], [`AdminError::UserNotFound`],
    /// [`AdminError::SelfLockout`] (an admin deleting themselves), or
    /// [`AdminError::Unexpected`].
    pub fn delete_user(&self, manager: Manager<'_>, user: UserId) -> Result<(), AdminError> {
        let actor = manager.actor()?;
        self.apply(actor, user, vec![AccountChange::Delete])?;
        Ok(())
    }

    fn apply(
        &self,
        actor: Actor,
        user: UserId,
        changes: Vec<AccountChange>,
    ) -> Result<Option<User>, AdminError> {
        let now = self.ports.clock.now();
        let updated = self
            .ports
            .users
            .update(AccountUpdate {
                user,
                actor,
                changes,
                now,
            })
            .map_err(update_error)?;
        self.publish_revoked_sessions(&updated.revoked, now);
        Ok(updated.user)
    }
}

#[cfg(test)]
mod tests;
