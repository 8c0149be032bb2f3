//! The two transactions that act on a presented refresh token: rotation and
//! ending its session. Both find the token, lock its user and session and
//! read the session *with* the lock (a concurrent rotation may have committed
//! while this one waited), let [`domain::decide`] choose, and apply the
//! choice before committing. Of N concurrent rotations of one token, the first to get the
//! lock rotates; the others then see the new generation and get a grace
//! replay or reuse.
//!
//! The rotation also writes the request's audit row and, for a theft
//! response, its security event, in the same transaction: a refresh never
//! costs a second one. A `Rotate` from another network and device inside the
//! anomaly window ([`domain::AnomalyPolicy`]) is answered like a reuse, or
//! only recorded under `log_only`.

use std::time::Duration;

use application::ports::{EndOutcome, EndReason, EndRequest, RotateOutcome, RotateRequest};
use diesel::prelude::*;
use domain::{
    decide, AnomalyResponse, PresentedToken, RefreshAttempt, RefreshOutcome, ReuseResponse,
    RotationDecision, SecurityEventKind, SessionState, Sighting, Timestamp, TokenFingerprint,
};

use crate::audit::events;
use crate::audit::{insert_attempt, insert_attempt_alone, truncate_user_agent};
use crate::connection::{AnyConnection, Database};
use crate::error::DbError;
use crate::rows::{generation_to_db, reason, FoundToken, NewTokenRow, SessionRow, UserRow};
use crate::schema::{refresh_tokens, sessions};
use crate::sessions::{parse_ids, revoke_session, revoke_user_sessions};
use crate::transaction::{lock_session, lock_user, write_transaction};

impl Database {
    pub(crate) fn rotate_token(&self, request: &RotateRequest) -> Result<RotateOutcome, DbError> {
        let presented_digest = request.presented.to_hex();
        let mut conn = self.conn()?;
        let Some(token) = find_token(&mut conn, &presented_digest)? else {
            // The audit row is the only write of this refresh.
            if self.audit_trail() {
                let attempt = attempt_of(request, RefreshOutcome::UnknownToken, None);
                insert_attempt_alone(&mut conn, self.write_lock(), self.audit_ids(), &attempt)?;
            }
            return Ok(RotateOutcome::UnknownToken);
        };
        write_transaction(&mut conn, self.write_lock(), |conn| {
            let Some((user, mut row)) = lock_user_and_session(conn, &token)? else {
                self.audit(conn, request, RefreshOutcome::UnknownToken, None, false)?;
                return Ok(RotateOutcome::UnknownToken);
            };
            let presented = token.generation()?;
            let user_agent = request.client.user_agent.as_deref();
            let mut decision = decide(
                &row.state()?,
                PresentedToken {
                    generation: presented,
                },
                user_agent,
                &request.lifetimes,
                request.now,
            );
            let anomaly = anomaly_of(decision, &row, request);
            if anomaly == Some(AnomalyResponse::Revoke) {
                decision = RotationDecision::Reuse;
            }
            let now = request.now.as_millis();
            let previous = (row.last_ip.clone(), row.last_user_agent.clone());
            let previous_use = row.last_used_at;
            let mut revoked = Vec::new();
            let outcome = RefreshOutcome::of_rotation(decision, anomaly);
            // A success is counted in the session's run, which the session
            // update below writes anyway (see `count_in_run`).
            let on_session = outcome == RefreshOutcome::Success && self.audit_trail();
            // Each change is written and mirrored in `row`, which becomes
            // the state returned.
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
                    row.generation = generation_to_db(next);
                    row.rotated_at = now;
                    row.last_used_at = now;
                    row.rotated_by = request.client.user_agent.clone();
                    row.last_user_agent = request.client.user_agent.clone();
                    row.last_ip = request.client.ip.clone();
                    if on_session {
                        count_in_run(&mut row, request);
                    }
                    diesel::update(sessions::table.find(&row.id))
                        .set((
                            (
                                sessions::generation.eq(row.generation),
                                sessions::rotated_at.eq(row.rotated_at),
                                sessions::last_used_at.eq(row.last_used_at),
                                sessions::rotated_by.eq(&row.rotated_by),
                                sessions::last_user_agent.eq(&row.last_user_agent),
                                sessions::last_ip.eq(&row.last_ip),
                            ),
                            (
                                sessions::run_ip.eq(&row.run_ip),
                                sessions::run_user_agent.eq(&row.run_user_agent),
                                sessions::run_attempts.eq(row.run_attempts),
                                sessions::run_first_at.eq(row.run_first_at),
                                sessions::run_last_at.eq(row.run_last_at),
                            ),
                        ))
                        .execute(conn)?;
                }
                RotationDecision::GraceReplay => {
                    row.last_used_at = now;
                    diesel::update(sessions::table.find(&row.id))
                        .set(sessions::last_used_at.eq(now))
                        .execute(conn)?;
                }
                RotationDecision::Reuse => {
                    let why = if anomaly.is_some() {
                        reason::ANOMALY
                    } else {
                        reason::TOKEN_REUSE
                    };
                    revoked = theft_response(conn, &row, request.reuse_response, now, why)?;
                    // Either scope revokes this (live, so not yet revoked)
                    // session.
                    row.revoked_at = Some(now);
                    if anomaly.is_none() {
                        let details = events::reuse(
                            "refresh",
                            presented,
                            &row,
                            request.reuse_response,
                            revoked.len(),
                            &request.client,
                            &request.presented,
                        );
                        events::record(conn, &row, SecurityEventKind::TokenReuse, details, now)?;
                    }
                }
                RotationDecision::Expired(_) | RotationDecision::Revoked => {}
            }
            if let Some(response) = anomaly {
                let details = events::anomaly(
                    response,
                    request.reuse_response,
                    revoked.len(),
                    (previous.0.as_deref(), previous.1.as_deref(), previous_use),
                    &request.client,
                    now,
                    &request.presented,
                );
                events::record(conn, &row, SecurityEventKind::Anomaly, details, now)?;
            }
            self.audit(conn, request, outcome, Some(&row), on_session)?;
            Ok(RotateOutcome::Decided {
                decision,
                presented,
                session: row.into_session()?,
                user: user.into_user()?,
                revoked: parse_ids(revoked)?,
                anomaly,
            })
        })
    }

    /// Writes the audit row of this rotation (unless the trail is off);
    /// `on_session`: the row is already counted in its session's run.
    fn audit(
        &self,
        conn: &mut AnyConnection,
        request: &RotateRequest,
        outcome: RefreshOutcome,
        session: Option<&SessionRow>,
        on_session: bool,
    ) -> Result<(), DbError> {
        if !self.audit_trail() {
            return Ok(());
        }
        let attempt = attempt_of(request, outcome, session);
        insert_attempt(conn, self.audit_ids(), &attempt, on_session)
    }

    pub(crate) fn end_session_by_token(&self, request: &EndRequest) -> Result<EndOutcome, DbError> {
        let digest = request.token.to_hex();
        let mut conn = self.conn()?;
        let Some(token) = find_token(&mut conn, &digest)? else {
            return Ok(EndOutcome::UnknownToken);
        };
        write_transaction(&mut conn, self.write_lock(), |conn| {
            let Some((_, row)) = lock_user_and_session(conn, &token)? else {
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
                            let revoked = theft_response(
                                conn,
                                &row,
                                request.reuse_response,
                                now,
                                reason::TOKEN_REUSE,
                            )?;
                            let details = events::reuse(
                                "login",
                                token.generation()?,
                                &row,
                                request.reuse_response,
                                revoked.len(),
                                &request.client,
                                &request.token,
                            );
                            events::record(
                                conn,
                                &row,
                                SecurityEventKind::TokenReuse,
                                details,
                                now,
                            )?;
                            EndOutcome::Reused {
                                session,
                                user,
                                revoked: parse_ids(revoked)?,
                            }
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

/// Finds the presented token with a plain read, before any transaction:
/// unknown tokens (typos, cleaned up, or an attacker guessing) then never
/// queue for the write lock. What it reads never changes once committed
/// (a token's generation and session, a session's user), and a client only
/// ever holds a token whose insert has committed.
fn find_token(conn: &mut AnyConnection, digest: &str) -> Result<Option<FoundToken>, DbError> {
    Ok(refresh_tokens::table
        .inner_join(sessions::table)
        .filter(refresh_tokens::digest.eq(digest))
        .select((
            refresh_tokens::generation,
            refresh_tokens::session_id,
            sessions::user_id,
        ))
        .first::<FoundToken>(conn)
        .optional()?)
}

/// Inside the transaction: locks the token's user, then its session, and
/// returns both as they are now; `None` when either is gone.
fn lock_user_and_session(
    conn: &mut AnyConnection,
    token: &FoundToken,
) -> Result<Option<(UserRow, SessionRow)>, DbError> {
    let Some(user) = lock_user(conn, &token.user_id)? else {
        return Ok(None);
    };
    Ok(lock_session(conn, &token.session_id)?.map(|session| (user, session)))
}

/// The theft response: revokes the session's family, or every live session
/// of its user, with reason `why` (`token_reuse` or `anomaly`). The caller
/// commits it. Returns the sessions revoked.
fn theft_response(
    conn: &mut AnyConnection,
    session: &SessionRow,
    scope: ReuseResponse,
    now: i64,
    why: &'static str,
) -> Result<Vec<String>, DbError> {
    Ok(match scope {
        ReuseResponse::RevokeAll => revoke_user_sessions(conn, &session.user_id, now, why)?,
        ReuseResponse::RevokeFamily => {
            if revoke_session(conn, &session.id, now, why)? == 1 {
                vec![session.id.clone()]
            } else {
                Vec::new()
            }
        }
    })
}

/// The anomaly response due, if the presented token is the current one and
/// the request does not look like the client that last used the session.
fn anomaly_of(
    decision: RotationDecision,
    row: &SessionRow,
    request: &RotateRequest,
) -> Option<AnomalyResponse> {
    if !matches!(decision, RotationDecision::Rotate { .. }) {
        return None;
    }
    let last = Sighting {
        at: Timestamp::from_millis(row.last_used_at),
        ip: row.last_ip.as_deref(),
        user_agent: row.last_user_agent.as_deref(),
    };
    let current = Sighting {
        at: request.now,
        ip: request.client.ip.as_deref(),
        user_agent: request.client.user_agent.as_deref(),
    };
    request
        .anomaly
        .is_anomalous(&last, &current)
        .then_some(request.anomaly.response)
}

const DAY_MS: i64 = 86_400_000;

/// The start of the UTC day of `millis`, as the triggers compute it.
fn day_of(millis: i64) -> i64 {
    millis - millis.rem_euclid(DAY_MS)
}

/// Counts a successful rotation in the session's run: one more if it is of
/// the run's UTC day (that of its first success), IP and user agent (as the audit row stores them),
/// else a new run of one, and the `sessions_run_end` trigger moves the old
/// run into the daily aggregate when the row is written.
fn count_in_run(row: &mut SessionRow, request: &RotateRequest) {
    let now = request.now.as_millis();
    let day = day_of(now);
    let ip = request.client.ip.as_deref().unwrap_or("");
    let user_agent = request
        .client
        .user_agent
        .as_deref()
        .map_or("", truncate_user_agent);
    if row.run_attempts > 0
        && day_of(row.run_first_at) == day
        && row.run_ip == ip
        && row.run_user_agent == user_agent
    {
        row.run_attempts += 1;
        row.run_first_at = row.run_first_at.min(now);
        row.run_last_at = row.run_last_at.max(now);
    } else {
        ip.clone_into(&mut row.run_ip);
        user_agent.clone_into(&mut row.run_user_agent);
        row.run_attempts = 1;
        row.run_first_at = now;
        row.run_last_at = now;
    }
}

/// The audit record of a rotation request, with the user and session when
/// the token led to one.
fn attempt_of(
    request: &RotateRequest,
    outcome: RefreshOutcome,
    session: Option<&SessionRow>,
) -> RefreshAttempt {
    RefreshAttempt {
        at: request.now,
        outcome,
        user_id: session.and_then(|s| s.user_id.parse().ok()),
        session_id: session.and_then(|s| s.id.parse().ok()),
        ip: request.client.ip.clone(),
        user_agent: request.client.user_agent.clone(),
        fingerprint: Some(TokenFingerprint::of_digest(&request.presented)),
    }
}
