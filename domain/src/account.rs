//! Accounts: who may change what about a user, and what each change
//! revokes.
//!
//! A change is planned against the user *as stored at that moment* (the
//! storage adapter locks the row, asks [`plan`], then executes the plan in
//! the same transaction), so a rule such as "removing a role ends the
//! user's sessions" compares against the roles really being replaced.

use crate::audit::SecurityEventKind;
use crate::ids::{SessionId, UserId};
use crate::user::{PasswordHash, Role, Roles, User};

/// Who asks for a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The user themselves, through one of their sessions.
    User { id: UserId, session: SessionId },
    /// A user with the role `admin`, through the admin API.
    Admin(UserId),
    /// The operator, through the command line (no user behind it).
    Operator,
}

impl Actor {
    /// The user acting, recorded as `details.actor` of the event.
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Self::User { id, .. } | Self::Admin(id) => Some(*id),
            Self::Operator => None,
        }
    }

    /// How the change arrived: `api` or `cli`.
    pub fn via(&self) -> &'static str {
        match self {
            Self::User { .. } | Self::Admin(_) => "api",
            Self::Operator => "cli",
        }
    }
}

/// One change to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountChange {
    /// The user replaced their own password (the current one was verified).
    PasswordChanged(PasswordHash),
    /// An admin or the operator set a new password.
    PasswordReset(PasswordHash),
    /// The roles become exactly these.
    SetRoles(Roles),
    Disable,
    Enable,
    Delete,
}

/// Why a change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccountRuleError {
    /// An admin may not disable or delete themselves, nor remove their own
    /// `admin` role: an installation must never lose its last way in by a
    /// slip of the hand.
    #[error("an admin cannot lock themselves out")]
    SelfLockout,
    /// The actor may not make this change to this user (a user changes
    /// only their own password; a password *change* needs a session).
    #[error("not permitted")]
    NotPermitted,
}

/// Which sessions of the user a plan revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SessionRevocation {
    None,
    /// Every session but this one (the one that changed the password).
    AllBut(SessionId),
    All,
}

impl SessionRevocation {
    /// The wider of two revocations.
    fn widen(self, other: Self) -> Self {
        match (self, other) {
            (Self::All, _) | (_, Self::All) => Self::All,
            (Self::AllBut(a), Self::AllBut(b)) if a != b => Self::All,
            (Self::AllBut(a), _) | (_, Self::AllBut(a)) => Self::AllBut(a),
            (Self::None, Self::None) => Self::None,
        }
    }
}

/// A security event a plan records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountEvent {
    pub kind: SecurityEventKind,
    /// For `roles_changed`: the roles before and after.
    pub roles: Option<(Roles, Roles)>,
}

/// What to write, revoke and record, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPlan {
    pub password_hash: Option<PasswordHash>,
    pub roles: Option<Roles>,
    /// The new value of "disabled", when it changes.
    pub disabled: Option<bool>,
    /// The user, their sessions and tokens go; audit rows and events stay.
    pub delete: bool,
    pub revoke: SessionRevocation,
    /// In the order the changes were asked for; nothing for a change that
    /// changes nothing (disabling a disabled user).
    pub events: Vec<AccountEvent>,
    pub actor: Actor,
}

impl AccountPlan {
    fn empty(actor: Actor) -> Self {
        Self {
            password_hash: None,
            roles: None,
            disabled: None,
            delete: false,
            revoke: SessionRevocation::None,
            events: Vec::new(),
            actor,
        }
    }

    /// The user as the plan leaves them (`None` once deleted).
    pub fn apply(&self, user: &User) -> Option<User> {
        if self.delete {
            return None;
        }
        let mut after = user.clone();
        if let Some(roles) = &self.roles {
            after.roles = roles.clone();
        }
        if let Some(disabled) = self.disabled {
            after.disabled = disabled;
        }
        Some(after)
    }
}

/// Checks that `actor` may make `change` to `target` at all.
///
/// # Errors
/// [`AccountRuleError`].
pub fn authorize(
    actor: &Actor,
    target: UserId,
    change: &AccountChange,
) -> Result<(), AccountRuleError> {
    match (actor, change) {
        (Actor::User { id, .. }, AccountChange::PasswordChanged(_)) if *id == target => Ok(()),
        (Actor::User { .. }, _) | (_, AccountChange::PasswordChanged(_)) => {
            Err(AccountRuleError::NotPermitted)
        }
        (Actor::Admin(admin), change) if *admin == target => match change {
            AccountChange::Disable | AccountChange::Delete => Err(AccountRuleError::SelfLockout),
            AccountChange::SetRoles(roles) if !roles.contains(&Role::admin()) => {
                Err(AccountRuleError::SelfLockout)
            }
            _ => Ok(()),
        },
        (Actor::Admin(_) | Actor::Operator, _) => Ok(()),
    }
}

/// Plans `changes` to `user` (as stored now) by `actor`.
///
/// What each change revokes:
/// * a password change by the user: every *other* session of theirs;
/// * a password reset, disabling, deleting: every session;
/// * new roles: every session when a role is taken away (access tokens
///   carry roles, so only an ended session stops them at once); nothing
///   when roles are only added (the next refresh carries them);
/// * enabling: nothing (sessions ended by disabling stay ended).
///
/// # Errors
/// [`AccountRuleError`] when any change is refused: then none is made.
pub fn plan(
    actor: Actor,
    user: &User,
    changes: &[AccountChange],
) -> Result<AccountPlan, AccountRuleError> {
    for change in changes {
        authorize(&actor, user.id, change)?;
    }
    let mut plan = AccountPlan::empty(actor);
    let mut roles = user.roles.clone();
    let mut disabled = user.disabled;
    for change in changes {
        let (revoke, event) = match change {
            AccountChange::PasswordChanged(hash) => {
                plan.password_hash = Some(hash.clone());
                let keep = match actor {
                    Actor::User { session, .. } => SessionRevocation::AllBut(session),
                    _ => SessionRevocation::All,
                };
                (keep, Some(SecurityEventKind::PasswordChanged))
            }
            AccountChange::PasswordReset(hash) => {
                plan.password_hash = Some(hash.clone());
                (
                    SessionRevocation::All,
                    Some(SecurityEventKind::PasswordReset),
                )
            }
            AccountChange::SetRoles(new) => {
                let taken_away = roles.iter().any(|r| !new.contains(r));
                let before = std::mem::replace(&mut roles, new.clone());
                plan.roles = Some(new.clone());
                if before == *new {
                    (SessionRevocation::None, None)
                } else {
                    plan.events.push(AccountEvent {
                        kind: SecurityEventKind::RolesChanged,
                        roles: Some((before, new.clone())),
                    });
                    let revoke = if taken_away {
                        SessionRevocation::All
                    } else {
                        SessionRevocation::None
                    };
                    (revoke, None)
                }
            }
            AccountChange::Disable => {
                let was = std::mem::replace(&mut disabled, true);
                plan.disabled = Some(true);
                // Revoked even when already disabled: nothing may survive it.
                let event = (!was).then_some(SecurityEventKind::UserDisabled);
                (SessionRevocation::All, event)
            }
            AccountChange::Enable => {
                let was = std::mem::replace(&mut disabled, false);
                plan.disabled = Some(false);
                (
                    SessionRevocation::None,
                    was.then_some(SecurityEventKind::UserEnabled),
                )
            }
            AccountChange::Delete => {
                plan.delete = true;
                (SessionRevocation::All, Some(SecurityEventKind::UserDeleted))
            }
        };
        plan.revoke = plan.revoke.widen(revoke);
        if let Some(kind) = event {
            plan.events.push(AccountEvent { kind, roles: None });
        }
    }
    // Values that stay as they are need no write.
    if plan.disabled == Some(user.disabled) {
        plan.disabled = None;
    }
    if plan.roles.as_ref() == Some(&user.roles) {
        plan.roles = None;
    }
    Ok(plan)
}

/// A search by username prefix: at most 64 characters, compared without
/// regard to letter case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernamePrefix(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the query must be at most 64 characters")]
pub struct UsernamePrefixError;

impl UsernamePrefix {
    pub const MAX_LEN: usize = 64;

    /// `None` for an empty query (everyone).
    ///
    /// # Errors
    /// [`UsernamePrefixError`] over 64 characters.
    pub fn parse(raw: &str) -> Result<Option<Self>, UsernamePrefixError> {
        if raw.chars().count() > Self::MAX_LEN {
            return Err(UsernamePrefixError);
        }
        Ok((!raw.is_empty()).then(|| Self(raw.to_ascii_lowercase())))
    }

    /// The prefix of the canonical (lower-case) username.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first canonical username past every one with this prefix:
    /// canonical usernames are ASCII, so the prefix followed by U+007F
    /// bounds them (byte order, which both backends use for the key).
    pub fn upper_bound(&self) -> String {
        format!("{}\u{7f}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;
    use crate::user::Username;

    fn user(id: u8, roles: &[Role]) -> User {
        User {
            id: UserId::from_random_bytes([id; 16]),
            username: Username::parse("someone").unwrap(),
            roles: Roles::new(roles.iter().cloned()),
            created_at: Timestamp::from_millis(0),
            disabled: false,
            last_login_at: None,
        }
    }

    fn admin_of(u: &User) -> Actor {
        Actor::Admin(u.id)
    }

    fn hash() -> PasswordHash {
        PasswordHash::new("$argon2id$x".to_owned())
    }

    fn session() -> SessionId {
        SessionId::from_random_bytes([0x5e; 16])
    }

    fn kinds(plan: &AccountPlan) -> Vec<SecurityEventKind> {
        plan.events.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn a_password_change_revokes_every_other_session_of_the_user() {
        let alice = user(1, &[Role::user()]);
        let me = Actor::User {
            id: alice.id,
            session: session(),
        };
        let p = plan(me, &alice, &[AccountChange::PasswordChanged(hash())]).unwrap();
        assert_eq!(p.revoke, SessionRevocation::AllBut(session()));
        assert_eq!(p.password_hash, Some(hash()));
        assert_eq!(kinds(&p), [SecurityEventKind::PasswordChanged]);
        assert_eq!(p.actor.user_id(), Some(alice.id));
    }

    #[test]
    fn a_user_changes_only_their_own_password() {
        let alice = user(1, &[Role::user()]);
        let bob = user(2, &[Role::user()]);
        let bob_acts = Actor::User {
            id: bob.id,
            session: session(),
        };
        for change in [
            AccountChange::PasswordChanged(hash()),
            AccountChange::PasswordReset(hash()),
            AccountChange::Disable,
        ] {
            assert_eq!(
                plan(bob_acts, &alice, &[change]),
                Err(AccountRuleError::NotPermitted)
            );
        }
        let alice_acts = Actor::User {
            id: alice.id,
            session: session(),
        };
        assert_eq!(
            plan(alice_acts, &alice, &[AccountChange::Delete]),
            Err(AccountRuleError::NotPermitted)
        );
        assert_eq!(
            plan(
                Actor::Operator,
                &alice,
                &[AccountChange::PasswordChanged(hash())]
            ),
            Err(AccountRuleError::NotPermitted)
        );
    }

    #[test]
    fn a_reset_disabling_and_deleting_revoke_every_session() {
        let admin = user(9, &[Role::admin()]);
        let alice = user(1, &[Role::user()]);
        for (change, kind) in [
            (
                AccountChange::PasswordReset(hash()),
                SecurityEventKind::PasswordReset,
            ),
            (AccountChange::Disable, SecurityEventKind::UserDisabled),
            (AccountChange::Delete, SecurityEventKind::UserDeleted),
        ] {
            let p = plan(admin_of(&admin), &alice, &[change]).unwrap();
            assert_eq!(p.revoke, SessionRevocation::All);
            assert_eq!(kinds(&p), [kind]);
        }
    }

    #[test]
    fn an_admin_cannot_lock_themselves_out() {
        let admin = user(9, &[Role::admin(), Role::user()]);
        let me = admin_of(&admin);
        for change in [
            AccountChange::Disable,
            AccountChange::Delete,
            AccountChange::SetRoles(Roles::new([Role::user()])),
        ] {
            assert_eq!(
                plan(me, &admin, &[change]),
                Err(AccountRuleError::SelfLockout)
            );
        }
        // Keeping `admin` while dropping another role is fine.
        let p = plan(
            me,
            &admin,
            &[AccountChange::SetRoles(Roles::new([Role::admin()]))],
        )
        .unwrap();
        assert_eq!(kinds(&p), [SecurityEventKind::RolesChanged]);
        // So is the operator doing any of it.
        assert!(plan(Actor::Operator, &admin, &[AccountChange::Delete]).is_ok());
    }

    #[test]
    fn a_refused_change_refuses_the_whole_patch() {
        let admin = user(9, &[Role::admin()]);
        assert_eq!(
            plan(
                admin_of(&admin),
                &admin,
                &[
                    AccountChange::SetRoles(Roles::new([Role::admin()])),
                    AccountChange::Disable
                ]
            ),
            Err(AccountRuleError::SelfLockout)
        );
    }

    #[test]
    fn taking_a_role_away_revokes_every_session_and_adding_one_nothing() {
        let admin = user(9, &[Role::admin()]);
        let alice = user(1, &[Role::user(), Role::admin()]);
        let taken = plan(
            admin_of(&admin),
            &alice,
            &[AccountChange::SetRoles(Roles::new([Role::user()]))],
        )
        .unwrap();
        assert_eq!(taken.revoke, SessionRevocation::All);
        assert_eq!(
            taken.events[0].roles,
            Some((alice.roles.clone(), Roles::new([Role::user()])))
        );

        let bob = user(2, &[Role::user()]);
        let added = plan(
            admin_of(&admin),
            &bob,
            &[AccountChange::SetRoles(Roles::new([
                Role::user(),
                Role::admin(),
            ]))],
        )
        .unwrap();
        assert_eq!(added.revoke, SessionRevocation::None);
        assert_eq!(kinds(&added), [SecurityEventKind::RolesChanged]);
        let after = added.apply(&bob).unwrap();
        assert!(after.roles.contains(&Role::admin()));
    }

    #[test]
    fn setting_what_is_already_there_records_nothing() {
        let admin = user(9, &[Role::admin()]);
        let alice = user(1, &[Role::user()]);
        let same = plan(
            admin_of(&admin),
            &alice,
            &[
                AccountChange::SetRoles(alice.roles.clone()),
                AccountChange::Enable,
            ],
        )
        .unwrap();
        assert!(same.events.is_empty());
        assert_eq!(same.revoke, SessionRevocation::None);
    }

    #[test]
    fn disabling_twice_records_once_but_revokes_both_times() {
        let admin = user(9, &[Role::admin()]);
        let mut alice = user(1, &[Role::user()]);
        alice.disabled = true;
        let again = plan(admin_of(&admin), &alice, &[AccountChange::Disable]).unwrap();
        assert!(again.events.is_empty());
        assert_eq!(again.revoke, SessionRevocation::All);
        let enabled = plan(admin_of(&admin), &alice, &[AccountChange::Enable]).unwrap();
        assert_eq!(kinds(&enabled), [SecurityEventKind::UserEnabled]);
        assert_eq!(enabled.revoke, SessionRevocation::None);
        assert!(!enabled.apply(&alice).unwrap().disabled);
    }

    #[test]
    fn a_deleted_user_is_gone_after_the_plan() {
        let admin = user(9, &[Role::admin()]);
        let alice = user(1, &[Role::user()]);
        let p = plan(admin_of(&admin), &alice, &[AccountChange::Delete]).unwrap();
        assert_eq!(p.apply(&alice), None);
    }

    #[test]
    fn prefixes_are_case_folded_and_bounded() {
        assert_eq!(UsernamePrefix::parse(""), Ok(None));
        let p = UsernamePrefix::parse("AlI").unwrap().unwrap();
        assert_eq!(p.as_str(), "ali");
        assert!("ali" >= p.as_str() && "ali" < p.upper_bound().as_str());
        assert!("alice.b-c_9" < p.upper_bound().as_str());
        assert!("alj" > p.upper_bound().as_str());
        assert!(UsernamePrefix::parse(&"a".repeat(64)).is_ok());
        assert_eq!(
            UsernamePrefix::parse(&"a".repeat(65)),
            Err(UsernamePrefixError)
        );
    }
}
