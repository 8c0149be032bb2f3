//! Users, their credentials and roles.

use std::fmt;

use crate::ids::UserId;
use crate::time::Timestamp;

/// A username: 3–64 characters of `[A-Za-z0-9_.-]`.
///
/// Stored as given; uniqueness is case-insensitive, see [`Username::canonical`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("username must be between 3 and 64 characters")]
    Length,
    #[error("username may only contain letters, digits, '_', '.' and '-'")]
    Characters,
}

impl Username {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, UsernameError> {
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&raw.chars().count()) {
            return Err(UsernameError::Length);
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(UsernameError::Characters);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key that makes usernames unique regardless of case.
    pub fn canonical(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A clear-text password as the client sent it: 8–256 Unicode scalar values.
///
/// Never printed: `Debug` is redacted and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be between 8 and 256 characters")]
    Length,
}

impl Password {
    pub const MIN_LEN: usize = 8;
    pub const MAX_LEN: usize = 256;

    pub fn parse(raw: String) -> Result<Self, PasswordError> {
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&raw.chars().count()) {
            return Err(PasswordError::Length);
        }
        Ok(Self(raw))
    }

    /// The secret itself, for the password hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// A password hash in PHC string format. Opaque to the domain.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    pub fn new(phc: String) -> Self {
        Self(phc)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash([REDACTED])")
    }
}

/// A role name: `[a-z][a-z0-9_-]{0,31}` (a letter, then up to 31 letters,
/// digits, `_` or `-`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Role(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("role names are 1 to 32 characters of a-z, 0-9, '_' and '-', starting with a letter")]
pub struct RoleError;

impl Role {
    pub fn parse(raw: &str) -> Result<Self, RoleError> {
        let ok = (1..=32).contains(&raw.len())
            && raw.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(RoleError)
        }
    }

    pub fn admin() -> Self {
        Self("admin".to_owned())
    }

    pub fn user() -> Self {
        Self("user".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A sorted set of roles without duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Roles(Vec<Role>);

impl Roles {
    pub fn new(roles: impl IntoIterator<Item = Role>) -> Self {
        let mut v: Vec<Role> = roles.into_iter().collect();
        v.sort();
        v.dedup();
        Self(v)
    }

    pub fn contains(&self, role: &Role) -> bool {
        self.0.binary_search(role).is_ok()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Role> {
        self.0.iter()
    }

    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|r| r.0.clone()).collect()
    }

    /// Parses role names as stored (comma-separated); unknown garbage is dropped.
    pub fn from_stored(csv: &str) -> Self {
        Self::new(csv.split(',').filter_map(|r| Role::parse(r.trim()).ok()))
    }

    /// The comma-separated form used in storage.
    pub fn to_stored(&self) -> String {
        self.names().join(",")
    }
}

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub username: Username,
    pub roles: Roles,
    pub created_at: Timestamp,
    /// A disabled user cannot log in and has no live session.
    pub disabled: bool,
    /// The last successful login (session created), if any.
    pub last_login_at: Option<Timestamp>,
}

/// A user about to be stored, with its password already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub username: Username,
    pub password_hash: PasswordHash,
    pub roles: Roles,
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_accept_the_documented_alphabet() {
        assert!(Username::parse("alice.b-c_9").is_ok());
        assert_eq!(Username::parse("ab"), Err(UsernameError::Length));
        assert_eq!(Username::parse(&"a".repeat(65)), Err(UsernameError::Length));
        assert_eq!(Username::parse("bob smith"), Err(UsernameError::Characters));
        assert_eq!(Username::parse("jörg"), Err(UsernameError::Characters));
        assert_eq!(Username::parse("x' OR 1=1"), Err(UsernameError::Characters));
    }

    #[test]
    fn usernames_are_unique_regardless_of_case() {
        let a = Username::parse("Alice").unwrap();
        let b = Username::parse("aLICE").unwrap();
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(a.as_str(), "Alice");
    }

    #[test]
    fn password_length_counts_unicode_scalar_values() {
        assert!(Password::parse("ünïcødé".to_owned()).is_err()); // 7 chars, more bytes
        assert!(Password::parse("ünïcødé!".to_owned()).is_ok());
        assert!(Password::parse("x".repeat(257)).is_err());
        assert!(Password::parse("é".repeat(256)).is_ok());
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let p = Password::parse("hunter2-hunter2".to_owned()).unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
        let h = PasswordHash::new("$argon2id$v=19$secret".to_owned());
        assert!(!format!("{h:?}").contains("argon2id"));
    }

    #[test]
    fn roles_are_sorted_and_deduplicated() {
        let roles = Roles::new([Role::user(), Role::admin(), Role::user()]);
        assert_eq!(roles.names(), vec!["admin", "user"]);
        assert!(roles.contains(&Role::admin()));
        assert_eq!(Roles::from_stored(&roles.to_stored()), roles);
        assert!(Role::parse("Admin").is_err());
    }

    #[test]
    fn role_names_start_with_a_letter() {
        assert!(Role::parse("ops-team_2").is_ok());
        assert!(Role::parse(&format!("a{}", "b".repeat(31))).is_ok());
        for bad in ["", "2fa", "-x", "_x", "a b", "é", &"a".repeat(33)] {
            assert!(Role::parse(bad).is_err(), "{bad}");
        }
    }
}
