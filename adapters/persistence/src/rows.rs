//! Rows as stored, and their conversion into domain types. A stored value
//! the domain refuses is reported as [`DbError::Corrupt`], never unwrapped.

use diesel::prelude::*;
use domain::{
    Generation, Jkt, Roles, Session, SessionId, SessionState, Timestamp, User, UserId, Username,
};

use crate::error::DbError;
use crate::schema::{refresh_tokens, sessions, users};

/// Why a session ended, as stored in `sessions.revoked_reason`.
pub(crate) mod reason {
    pub const TOKEN_REUSE: &str = "token_reuse";
    /// The theft response to an anomaly (another network and device).
    pub const ANOMALY: &str = "anomaly";
    /// `SessionRepository::revoke_all` on an admin's request.
    pub const ADMIN_REVOKE: &str = "admin_revoke";
    pub const LOGOUT: &str = "logout";
    pub const REPLACED_BY_LOGIN: &str = "replaced_by_login";
    pub const EVICTED: &str = "evicted";
    /// `SessionRepository::revoke_all` (log out everywhere).
    pub const REVOKE_ALL: &str = "revoke_all";
    /// `SessionRepository::revoke_one` (a user ends one of their sessions).
    pub const REVOKE_ONE: &str = "revoke_one";
    // `UserRepository::update` stores the kind of the account event that
    // revoked the sessions (`password_changed`, `user_disabled`, …).
}

pub(crate) fn generation_to_db(generation: Generation) -> i64 {
    i64::from(generation.value())
}

fn generation_from_db(stored: i64) -> Result<Generation, DbError> {
    u32::try_from(stored)
        .map(Generation::new)
        .map_err(|_| DbError::Corrupt("generation out of range"))
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = users)]
pub(crate) struct UserRow {
    pub id: String,
    pub username: String,
    pub roles: String,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    pub last_login_at: Option<i64>,
}

impl UserRow {
    pub fn into_user(self) -> Result<User, DbError> {
        Ok(User {
            id: self
                .id
                .parse::<UserId>()
                .map_err(|_| DbError::Corrupt("users.id"))?,
            username: Username::parse(&self.username)
                .map_err(|_| DbError::Corrupt("users.username"))?,
            roles: Roles::from_stored(&self.roles),
            created_at: Timestamp::from_millis(self.created_at),
            disabled: self.disabled_at.is_some(),
            last_login_at: self.last_login_at.map(Timestamp::from_millis),
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub(crate) struct NewUserRow<'a> {
    pub id: &'a str,
    pub username: &'a str,
    pub username_key: &'a str,
    pub password_hash: &'a str,
    pub roles: &'a str,
    pub created_at: i64,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub(crate) struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub generation: i64,
    pub device_name: Option<String>,
    pub created_at: i64,
    pub last_used_at: i64,
    pub rotated_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub last_ip: Option<String>,
    pub last_user_agent: Option<String>,
    pub rotated_by: Option<String>,
    pub run_ip: String,
    pub run_user_agent: String,
    pub run_attempts: i64,
    pub run_first_at: i64,
    pub run_last_at: i64,
    pub dpop_jkt: Option<String>,
}

impl SessionRow {
    /// What [`domain::decide`] reads.
    pub fn state(&self) -> Result<SessionState, DbError> {
        Ok(SessionState {
            generation: generation_from_db(self.generation)?,
            revoked: self.revoked_at.is_some(),
            rotated_at: Timestamp::from_millis(self.rotated_at),
            expires_at: Timestamp::from_millis(self.expires_at),
            rotated_by: self.rotated_by.clone(),
        })
    }

    pub fn into_session(self) -> Result<Session, DbError> {
        Ok(Session {
            id: self
                .id
                .parse::<SessionId>()
                .map_err(|_| DbError::Corrupt("sessions.id"))?,
            user_id: self
                .user_id
                .parse::<UserId>()
                .map_err(|_| DbError::Corrupt("sessions.user_id"))?,
            generation: generation_from_db(self.generation)?,
            device_name: self.device_name,
            created_at: Timestamp::from_millis(self.created_at),
            last_used_at: Timestamp::from_millis(self.last_used_at),
            rotated_at: Timestamp::from_millis(self.rotated_at),
            expires_at: Timestamp::from_millis(self.expires_at),
            revoked_at: self.revoked_at.map(Timestamp::from_millis),
            last_ip: self.last_ip,
            last_user_agent: self.last_user_agent,
            dpop_jkt: self
                .dpop_jkt
                .as_deref()
                .map(Jkt::parse)
                .transpose()
                .map_err(|_| DbError::Corrupt("sessions.dpop_jkt"))?,
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = sessions)]
pub(crate) struct NewSessionRow<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub generation: i64,
    pub device_name: Option<&'a str>,
    pub created_at: i64,
    pub last_used_at: i64,
    pub rotated_at: i64,
    pub expires_at: i64,
    pub last_ip: Option<&'a str>,
    pub last_user_agent: Option<&'a str>,
    pub rotated_by: Option<&'a str>,
    pub dpop_jkt: Option<&'a str>,
}

#[derive(Insertable)]
#[diesel(table_name = refresh_tokens)]
pub(crate) struct NewTokenRow<'a> {
    pub digest: &'a str,
    pub session_id: &'a str,
    pub generation: i64,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// A presented token, found by its digest: what the rotation needs before
/// it locks anything.
#[derive(Debug, Queryable)]
pub(crate) struct FoundToken {
    pub generation: i64,
    pub session_id: String,
    pub user_id: String,
}

impl FoundToken {
    pub fn generation(&self) -> Result<Generation, DbError> {
        generation_from_db(self.generation)
    }

    pub fn ids(&self) -> Result<(SessionId, UserId), DbError> {
        Ok((
            self.session_id
                .parse()
                .map_err(|_| DbError::Corrupt("refresh_tokens.session_id"))?,
            self.user_id
                .parse()
                .map_err(|_| DbError::Corrupt("sessions.user_id"))?,
        ))
    }
}
