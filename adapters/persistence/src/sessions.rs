//! [`SessionRepository`] over `sessions` and `refresh_tokens`: creation with
//! eviction, revocation, listing. Rotation and ending a session through one
//! of its tokens live in `rotation.rs`.

use std::time::Duration;

use application::ports::{
    CreateSessionError, CreatedSession, EndOutcome, EndRequest, RevokeReason, RotateOutcome,
    RotateRequest, SessionRepository, StoreError, TokenLocation,
};
use diesel::prelude::*;
use domain::{
    Generation, Jkt, NewSession, RevocationReason, SecurityEventKind, Session, SessionId,
    SessionStatus, Timestamp, TokenDigest, UserId,
};

use crate::audit::{insert_event, EventDraft};
use crate::connection::{AnyConnection, Database};
use crate::error::{store, DbError};
use crate::rows::{generation_to_db, NewSessionRow, NewTokenRow, SessionRow};
use crate::schema::{refresh_tokens, sessions, users};
use crate::transaction::{lock_user, write_transaction};

impl SessionRepository for Database {
    fn create(
        &self,
        session: NewSession,
        token: TokenDigest,
        max_sessions: u32,
    ) -> Result<CreatedSession, CreateSessionError> {
        self.create_session(session, &token, max_sessions)
            .map_err(|e| CreateSessionError::Store(e.into_store("create session")))?
    }

    fn locate(&self, token: &TokenDigest) -> Result<Option<TokenLocation>, StoreError> {
        self.locate_token(token)
            .map_err(store("locate refresh token"))
    }

    fn rotate(&self, request: RotateRequest) -> Result<RotateOutcome, StoreError> {
        self.rotate_token(request)
            .map_err(store("rotate refresh token"))
    }

    fn end_by_token(&self, request: EndRequest) -> Result<EndOutcome, StoreError> {
        self.end_session_by_token(&request)
            .map_err(store("end session by token"))
    }

    fn revoke_all(
        &self,
        user: UserId,
        reason: RevokeReason,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        self.revoke_all_sessions(user, reason, now)
            .map_err(store("revoke all sessions"))
    }

    fn revoke_one(
        &self,
        user: UserId,
        session: SessionId,
        idle_ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.revoke_one_session(user, session, idle_ttl, now)
            .map_err(store("revoke session"))
    }

    fn list_live(
        &self,
        user: UserId,
        idle_ttl: Duration,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        self.live_sessions(user, idle_ttl, now)
            .map_err(store("list live sessions"))
    }

    fn status(
        &self,
        session: SessionId,
        idle_ttl: Duration,
        now: Timestamp,
    ) -> Result<SessionStatus, StoreError> {
        self.session_status(session, idle_ttl, now)
            .map_err(store("session status"))
    }
}

impl Database {
    fn create_session(
        &self,
        new: NewSession,
        token: &TokenDigest,
        max_sessions: u32,
    ) -> Result<Result<CreatedSession, CreateSessionError>, DbError> {
        let id = new.id.to_string();
        let user_id = new.user_id.to_string();
        let digest = token.to_hex();
        let created_at = new.created_at.as_millis();
        let expires_at = new.expires_at.as_millis();
        let mut conn = self.conn()?;
        let evicted = write_transaction(&mut conn, self.write_lock(), |conn| {
            // The user row orders this against other writers of the user's
            // sessions (see `transaction.rs`), a disable or a deletion
            // included: none of them can leave this session behind.
            match lock_user(conn, &user_id)? {
                None => return Ok(Err(CreateSessionError::UserGone)),
                Some(user) if user.disabled_at.is_some() => {
                    return Ok(Err(CreateSessionError::AccountDisabled))
                }
                Some(_) => {}
            }
            diesel::update(users::table.find(&user_id))
                .set(users::last_login_at.eq(created_at))
                .execute(conn)?;
            diesel::insert_into(sessions::table)
                .values(NewSessionRow {
                    id: &id,
                    user_id: &user_id,
                    generation: generation_to_db(Generation::FIRST),
                    device_name: new.device_name.as_deref(),
                    created_at,
                    last_used_at: created_at,
                    rotated_at: created_at,
                    expires_at,
                    last_ip: new.ip.as_deref(),
                    last_user_agent: new.user_agent.as_deref(),
                    rotated_by: new.user_agent.as_deref(),
                    rotated_ip: new.ip.as_deref(),
                    dpop_jkt: new.dpop_jkt.as_ref().map(Jkt::as_str),
                })
                .execute(conn)?;
            diesel::insert_into(refresh_tokens::table)
                .values(NewTokenRow {
                    digest: &digest,
                    session_id: &id,
                    generation: generation_to_db(Generation::FIRST),
                    issued_at: created_at,
                    expires_at,
                })
                .execute(conn)?;
            evict_least_recently_used(conn, &user_id, &id, max_sessions, created_at).map(Ok)
        })?;
        let evicted = match evicted {
            Ok(evicted) => evicted,
            Err(refused) => return Ok(Err(refused)),
        };
        let session = Session {
            id: new.id,
            user_id: new.user_id,
            generation: Generation::FIRST,
            device_name: new.device_name,
            created_at: new.created_at,
            last_used_at: new.created_at,
            rotated_at: new.created_at,
            expires_at: new.expires_at,
            revoked_at: None,
            last_ip: new.ip,
            last_user_agent: new.user_agent,
            dpop_jkt: new.dpop_jkt,
        };
        Ok(Ok(CreatedSession {
            session,
            evicted: parse_ids(evicted)?,
        }))
    }

    /// Revokes and records the security event of `why` in one transaction.
    fn revoke_all_sessions(
        &self,
        user: UserId,
        why: RevokeReason,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, DbError> {
        let user_id = user.to_string();
        let now = now.as_millis();
        let (kind, stored_reason, details) = match why {
            RevokeReason::LogoutAll => (
                SecurityEventKind::LogoutAll,
                RevocationReason::RevokeAll,
                serde_json::json!({}),
            ),
            RevokeReason::Admin { by } => (
                SecurityEventKind::AdminRevoke,
                RevocationReason::AdminRevoke,
                serde_json::json!({ "admin_id": by.to_string() }),
            ),
        };
        let mut conn = self.conn()?;
        let revoked = write_transaction(&mut conn, self.write_lock(), |conn| {
            lock_user(conn, &user_id)?;
            let revoked = revoke_user_sessions(conn, &user_id, now, stored_reason)?;
            let mut details = details;
            if let Some(map) = details.as_object_mut() {
                map.insert("revoked_sessions".to_owned(), revoked.len().into());
            }
            insert_event(
                conn,
                EventDraft {
                    user_id: &user_id,
                    session_id: None,
                    kind,
                    details,
                    at: now,
                },
            )?;
            Ok(revoked)
        })?;
        parse_ids(revoked)
    }

    fn revoke_one_session(
        &self,
        user: UserId,
        session: SessionId,
        idle_ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, DbError> {
        let (user_id, session_id) = (user.to_string(), session.to_string());
        // Live means the current token's idle deadline and the absolute one
        // are both ahead (`Session::refresh_expires_at`), as `list_live` says.
        let idle_since = now.minus(idle_ttl).as_millis();
        let now = now.as_millis();
        let mut conn = self.conn()?;
        // One statement on one row: it needs no lock beyond its own.
        let revoked = write_transaction(&mut conn, self.write_lock(), |conn| {
            Ok(diesel::update(
                sessions::table
                    .filter(sessions::id.eq(&session_id))
                    .filter(sessions::user_id.eq(&user_id))
                    .filter(sessions::revoked_at.is_null())
                    .filter(sessions::expires_at.gt(now))
                    .filter(sessions::rotated_at.gt(idle_since)),
            )
            .set((
                sessions::revoked_at.eq(now),
                sessions::revoked_reason.eq(RevocationReason::RevokeOne.as_str()),
            ))
            .execute(conn)?)
        })?;
        Ok(revoked == 1)
    }

    fn live_sessions(
        &self,
        user: UserId,
        idle_ttl: Duration,
        now: Timestamp,
    ) -> Result<Vec<Session>, DbError> {
        let mut conn = self.conn()?;
        let rows: Vec<SessionRow> = sessions::table
            .filter(sessions::user_id.eq(user.to_string()))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now.as_millis()))
            .order((
                sessions::last_used_at.desc(),
                sessions::created_at.desc(),
                sessions::id.asc(),
            ))
            .select(SessionRow::as_select())
            .load(&mut conn)?;
        // The idle deadline is checked by the domain's own rule, so that the
        // list and `status` can never disagree.
        let mut live = Vec::with_capacity(rows.len());
        for row in rows {
            let session = row.into_session()?;
            if session.status(idle_ttl, now) == SessionStatus::Live {
                live.push(session);
            }
        }
        Ok(live)
    }

    fn session_status(
        &self,
        session: SessionId,
        idle_ttl: Duration,
        now: Timestamp,
    ) -> Result<SessionStatus, DbError> {
        let mut conn = self.conn()?;
        let row = sessions::table
            .find(session.to_string())
            .select(SessionRow::as_select())
            .first(&mut conn)
            .optional()?;
        match row {
            Some(row) => Ok(row.into_session()?.status(idle_ttl, now)),
            None => Ok(SessionStatus::Unknown),
        }
    }
}

/// Revokes one session unless it already is. Returns how many rows changed.
pub(crate) fn revoke_session(
    conn: &mut AnyConnection,
    session_id: &str,
    now: i64,
    why: RevocationReason,
) -> Result<usize, DbError> {
    Ok(diesel::update(
        sessions::table
            .filter(sessions::id.eq(session_id))
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(now),
        sessions::revoked_reason.eq(why.as_str()),
    ))
    .execute(conn)?)
}

/// Revokes every session of the user that is neither revoked nor past its
/// absolute end. Returns their ids. The caller holds the user's lock, so the
/// set read is the set changed.
pub(crate) fn revoke_user_sessions(
    conn: &mut AnyConnection,
    user_id: &str,
    now: i64,
    why: RevocationReason,
) -> Result<Vec<String>, DbError> {
    let ids: Vec<String> = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .select(sessions::id)
        .load(conn)?;
    if ids.is_empty() {
        return Ok(ids);
    }
    diesel::update(
        sessions::table
            .filter(sessions::id.eq_any(&ids))
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(now),
        sessions::revoked_reason.eq(why.as_str()),
    ))
    .execute(conn)?;
    Ok(ids)
}

/// Stored session ids as domain ids.
pub(crate) fn parse_ids(ids: Vec<String>) -> Result<Vec<SessionId>, DbError> {
    ids.iter()
        .map(|id| {
            id.parse::<SessionId>()
                .map_err(|_| DbError::Corrupt("sessions.id"))
        })
        .collect()
}

/// Revokes the least recently used live sessions of the user beyond
/// `max_sessions`, never the one just created (`keep`). Returns their ids.
fn evict_least_recently_used(
    conn: &mut AnyConnection,
    user_id: &str,
    keep: &str,
    max_sessions: u32,
    now: i64,
) -> Result<Vec<String>, DbError> {
    // Most recently used first; everything past the first `max_sessions - 1`
    // others goes. The list is short (bounded by the limit plus sessions
    // that merely expired), so it is cut here rather than with an OFFSET.
    let others: Vec<String> = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::id.ne(keep))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .order((
            sessions::last_used_at.desc(),
            sessions::created_at.desc(),
            sessions::id.desc(),
        ))
        .select(sessions::id)
        .load(conn)?;
    let allowed = usize::try_from(max_sessions.saturating_sub(1)).unwrap_or(usize::MAX);
    let victims = others.get(allowed..).unwrap_or_default().to_vec();
    if victims.is_empty() {
        return Ok(victims);
    }
    diesel::update(sessions::table.filter(sessions::id.eq_any(&victims)))
        .set((
            sessions::revoked_at.eq(now),
            sessions::revoked_reason.eq(RevocationReason::Evicted.as_str()),
        ))
        .execute(conn)?;
    Ok(victims)
}
