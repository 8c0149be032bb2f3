//! Rows as stored, and their conversion into domain types. A stored value
//! the domain refuses is reported as [`DbError::Corrupt`], never unwrapped.

use diesel::prelude::*;
use domain::{
    Ended, Generation, Jkt, LastUse, RevocationReason, Roles, Session, SessionId, SessionState,
    Timestamp, User, UserId, Username,
};

use application::ports::TokenLocation;

use crate::error::DbError;
use crate::schema::{refresh_tokens, sessions, users};

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

#[derive(Debug, Clone, Queryable, Selectable)]
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
    pub revoked_reason: Option<String>,
    pub last_ip: Option<String>,
    pub last_user_agent: Option<String>,
    pub rotated_by: Option<String>,
    pub rotated_ip: Option<String>,
    pub run_ip: String,
    pub run_user_agent: String,
    pub run_attempts: i64,
    pub run_first_at: i64,
    pub run_last_at: i64,
    pub dpop_jkt: Option<String>,
}

impl SessionRow {
    /// What [`domain::plan`] reads.
    pub fn state(&self) -> Result<SessionState, DbError> {
        Ok(SessionState {
            generation: generation_from_db(self.generation)?,
            ended: self.revoked_at.map(|at| Ended {
                at: Timestamp::from_millis(at),
                reason: self
                    .revoked_reason
                    .as_deref()
                    .and_then(RevocationReason::parse),
            }),
            rotated_at: Timestamp::from_millis(self.rotated_at),
            expires_at: Timestamp::from_millis(self.expires_at),
            rotated_by: self.rotated_by.clone(),
            rotated_from: self.rotated_ip.clone(),
            last_use: LastUse {
                at: Timestamp::from_millis(self.last_used_at),
                ip: self.last_ip.clone(),
                user_agent: self.last_user_agent.clone(),
            },
            bound_to: self
                .dpop_jkt
                .as_deref()
                .map(Jkt::parse)
                .transpose()
                .map_err(|_| DbError::Corrupt("sessions.dpop_jkt"))?,
        })
    }

    /// Takes over what a plan changed: the state as [`Self::state`] reads
    /// it, written back field by field.
    pub fn set_state(&mut self, state: &SessionState) {
        self.generation = generation_to_db(state.generation);
        self.revoked_at = state.ended.map(|e| e.at.as_millis());
        self.revoked_reason = state
            .ended
            .and_then(|e| e.reason)
            .map(|r| r.as_str().to_owned());
        self.rotated_at = state.rotated_at.as_millis();
        self.rotated_by.clone_from(&state.rotated_by);
        self.rotated_ip.clone_from(&state.rotated_from);
        self.last_used_at = state.last_use.at.as_millis();
        self.last_ip.clone_from(&state.last_use.ip);
        self.last_user_agent.clone_from(&state.last_use.user_agent);
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
    pub rotated_ip: Option<&'a str>,
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
    pub dpop_jkt: Option<String>,
}

impl FoundToken {
    pub fn location(&self) -> Result<TokenLocation, DbError> {
        Ok(TokenLocation {
            session: self
                .session_id
                .parse()
                .map_err(|_| DbError::Corrupt("refresh_tokens.session_id"))?,
            user: self
                .user_id
                .parse()
                .map_err(|_| DbError::Corrupt("sessions.user_id"))?,
            generation: generation_from_db(self.generation)?,
            bound: self.dpop_jkt.is_some(),
        })
    }
}
