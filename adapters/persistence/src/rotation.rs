//! The two transactions that act on a presented refresh token: rotation and
//! ending its session. Both find the token, lock its user and session, read
//! the session *after* locking (a concurrent rotation may have committed
//! meanwhile), let [`domain::decide`] choose, and apply the choice before
//! committing. Of N concurrent rotations of one token, the first to get the
//! lock rotates; the others then see the new generation and get a grace
//! replay or reuse.

use std::time::Duration;

use application::ports::{EndOutcome, EndReason, EndRequest, RotateOutcome, RotateRequest};
use diesel::prelude::*;
use domain::{
    decide, PresentedToken, ReuseResponse, RotationDecision, Session, SessionState, Timestamp, User,
};

use crate::connection::{AnyConnection, Database};
use crate::error::DbError;
use crate::rows::{generation_to_db, reason, FoundToken, NewTokenRow, SessionRow, UserRow};
use crate::schema::{refresh_tokens, sessions, users};
use crate::sessions::{revoke_session, revoke_user_sessions};
use crate::transaction::{lock_rows, write_transaction};

impl Database {
    pub(crate) fn rotate_token(&self, request: &RotateRequest) -> Result<RotateOutcome, DbError> {
        let presented_digest = request.presented.to_hex();
        let mut conn = self.conn()?;
        write_transaction(&mut conn, |conn| {
            let Some((token, row)) = find_and_lock(conn, &presented_digest)? else {
                return Ok(RotateOutcome::UnknownToken);
            };
            let presented = token.generation()?;
            let user_agent = request.client.user_agent.as_deref();
            let decision = decide(
                &row.state()?,
                PresentedToken {
                    generation: presented,
                },
                user_agent,
                &request.lifetimes,
                request.now,
            );
            let now = request.now.as_millis();
            match decision {
                RotationDecision::Rotate { next } => {
                    diesel::update(refresh_tokens::table.find(&presented_digest))
                        .set(refresh_tokens::used_at.eq(now))
                        .execute(conn)?;
                    // Stays until the session's absolute end, like every
                    // token of the session, so a later replay is recognised.
                    diesel::insert_into(refresh_tokens::table)
                        .values(NewTokenRow {
                            digest: &request.successor.to_hex(),
                            session_id: &row.id,
                            generation: generation_to_db(next),
                            issued_at: now,
                            expires_at: row.expires_at,
                        })
                        .execute(conn)?;
                    diesel::update(sessions::table.find(&row.id))
                        .set((
                            sessions::generation.eq(generation_to_db(next)),
                            sessions::rotated_at.eq(now),
                            sessions::last_used_at.eq(now),
                            sessions::rotated_by.eq(user_agent),
                            sessions::last_user_agent.eq(user_agent),
                            sessions::last_ip.eq(request.client.ip.as_deref()),
                        ))
                        .execute(conn)?;
                }
                RotationDecision::GraceReplay => {
                    diesel::update(sessions::table.find(&row.id))
                        .set(sessions::last_used_at.eq(now))
                        .execute(conn)?;
                }
                RotationDecision::Reuse => theft_response(conn, &row, request.reuse_response, now)?,
                RotationDecision::Expired(_) | RotationDecision::Revoked => {}
            }
            let (session, user) = load_session_with_user(conn, &row.id)?;
            Ok(RotateOutcome::Decided {
                decision,
                presented,
                session,
                user,
            })
        })
    }

    pub(crate) fn end_session_by_token(&self, request: &EndRequest) -> Result<EndOutcome, DbError> {
        let digest = request.token.to_hex();
        let mut conn = self.conn()?;
        write_transaction(&mut conn, |conn| {
            let Some((token, row)) = find_and_lock(conn, &digest)? else {
                return Ok(EndOutcome::UnknownToken);
            };
            let (session, user) = token.ids()?;
            let state = row.state()?;
            let now = request.now.as_millis();
            let ended = match request.reason {
                // Any token of the session ends it; never a theft response.
                EndReason::Logout if is_live(&state, request.lifetimes.idle_ttl, request.now) => {
                    revoke_session(conn, &row.id, now, reason::LOGOUT)?;
                    EndOutcome::Ended { session, user }
                }
                EndReason::Logout => EndOutcome::AlreadyEnded { session, user },
                EndReason::ReplacedByLogin => {
                    let decision = decide(
                        &state,
                        PresentedToken {
                            generation: token.generation()?,
                        },
                        request.client.user_agent.as_deref(),
                        &request.lifetimes,
                        request.now,
                    );
                    match decision {
                        RotationDecision::Reuse => {
                            theft_response(conn, &row, request.reuse_response, now)?;
                            EndOutcome::Reused { session, user }
                        }
                        RotationDecision::Rotate { .. } | RotationDecision::GraceReplay => {
                            revoke_session(conn, &row.id, now, reason::REPLACED_BY_LOGIN)?;
                            EndOutcome::Ended { session, user }
                        }
                        RotationDecision::Expired(_) | RotationDecision::Revoked => {
                            EndOutcome::AlreadyEnded { session, user }
                        }
                    }
                }
            };
            Ok(ended)
        })
    }
}

/// Whether the session's tokens may still be honoured (the rule of
/// [`domain::Session::status`], on the decision's view of the session).
fn is_live(state: &SessionState, idle_ttl: Duration, now: Timestamp) -> bool {
    !state.revoked && now < state.rotated_at.plus(idle_ttl).min(state.expires_at)
}

/// Finds the token with this digest and locks its user and session; `None`
/// when either is gone. The session is read after the lock is held.
fn find_and_lock(
    conn: &mut AnyConnection,
    digest: &str,
) -> Result<Option<(FoundToken, SessionRow)>, DbError> {
    let token = refresh_tokens::table
        .inner_join(sessions::table)
        .filter(refresh_tokens::digest.eq(digest))
        .select((
            refresh_tokens::generation,
            refresh_tokens::session_id,
            sessions::user_id,
        ))
        .first::<FoundToken>(conn)
        .optional()?;
    let Some(token) = token else {
        return Ok(None);
    };
    if !lock_rows(conn, &token.user_id, Some(&token.session_id))? {
        return Ok(None);
    }
    let row = sessions::table
        .find(&token.session_id)
        .select(SessionRow::as_select())
        .first(conn)
        .optional()?;
    Ok(row.map(|row| (token, row)))
}

/// The theft response: revokes the session's family, or every live session
/// of its user, with reason `token_reuse`. The caller commits it.
fn theft_response(
    conn: &mut AnyConnection,
    session: &SessionRow,
    scope: ReuseResponse,
    now: i64,
) -> Result<(), DbError> {
    match scope {
        ReuseResponse::RevokeAll => {
            revoke_user_sessions(conn, &session.user_id, now, reason::TOKEN_REUSE)?;
        }
        ReuseResponse::RevokeFamily => {
            revoke_session(conn, &session.id, now, reason::TOKEN_REUSE)?;
        }
    }
    Ok(())
}

fn load_session_with_user(
    conn: &mut AnyConnection,
    session_id: &str,
) -> Result<(Session, User), DbError> {
    let (session, user) = sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq(session_id))
        .select((SessionRow::as_select(), UserRow::as_select()))
        .first::<(SessionRow, UserRow)>(conn)?;
    Ok((session.into_session()?, user.into_user()?))
}
