//! The two transactions that act on a presented refresh token: rotation and
//! ending its session. Both are find → lock → plan → execute: the token was
//! located before the transaction ([`Database::locate_token`]); the
//! transaction locks its user and session, reads the session *with* the
//! lock (a concurrent rotation may have committed while this one waited),
//! asks the domain for the plan ([`domain::plan`], [`domain::plan_end`])
//! and writes what the plan says before committing. Of N concurrent
//! rotations of one token, the first to get the lock rotates; the others
//! then see the new generation. No rule lives here.
//!
//! The rotation also writes the request's audit row and the plan's
//! security event in the same transaction: a refresh never costs a second
//! one. For a session bound to a DPoP key, both transactions record the
//! proof's `jti` too ([`spend_proof`]), after the locks: a request that
//! rolls back leaves its proof unspent, and one that commits, whatever the
//! plan decided, has spent it.

use application::deadline;
use application::ports::{
    CheckedProof, EndOutcome, EndRequest, RotateOutcome, RotateRequest, TokenLocation,
};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use domain::{
    plan, plan_end, EndDecision, EndVia, Generation, Jkt, PlannedEvent, PlannedRevocation,
    PresentedToken, RefreshAttempt, RefreshOutcome, RevocationScope, RotationDecision,
    SessionState, Sighting, Timestamp, TokenDigest, TokenFingerprint,
};

use crate::audit::events;
use crate::audit::{insert_attempt, truncate_user_agent, NewAuditRow};
use crate::connection::{AnyConnection, Database};
use crate::dpop::spend_proof;
use crate::error::DbError;
use crate::fixed::{
    Bind, Fixed, Returning, RotateGuarded, RotatePostgres, SpendToken, WriteRotation,
};
use crate::rows::{generation_to_db, FoundToken, NewTokenRow, SessionRow, UserRow};
use crate::schema::{refresh_tokens, sessions};
use crate::sessions::{parse_ids, revoke_session, revoke_user_sessions};
use crate::transaction::{lock_session, lock_user, write_transaction};

impl Database {
    /// Finds the presented token with a plain read, before any transaction:
    /// unknown tokens (typos, cleaned up, or an attacker guessing) then never
    /// queue for the write lock. What it reads never changes once committed
    /// (a token's generation and session, a session's user and key), and a
    /// client only ever holds a token whose insert has committed.
    ///
    /// A successor that a rotation of this process issued is found in
    /// memory ([`crate::locations`]) without a query.
    pub(crate) fn locate_token(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<TokenLocation>, DbError> {
        if let Some(location) = self.locations().get(digest) {
            return Ok(Some(location));
        }
        let mut conn = self.conn()?;
        find_token(&mut conn, &digest.to_hex())?
            .map(|found| found.location())
            .transpose()
    }

    /// On SQLite, through the group commit ([`crate::group_commit`]): the
    /// rotations that arrive together commit in one transaction.
    ///
    /// Once a rotation has committed, its successor's location is noted in
    /// memory for the successor's own refresh ([`crate::locations`]).
    pub(crate) fn rotate_token(&self, request: RotateRequest) -> Result<RotateOutcome, DbError> {
        let (successor, location) = (request.successor, request.location);
        let (outcome, written) = if let Some(group) = self.group_commit() {
            let db = self.clone();
            let outcome = group.run(Box::new(move |conn| {
                db.rotate_in(conn, &request).map(|(outcome, _)| outcome)
            }))?;
            (outcome, None)
        } else {
            let mut conn = self.conn()?;
            match self.rotate_guarded(&mut conn, &request)? {
                Some(done) => done,
                None => write_transaction(&mut conn, self.write_lock(), |conn| {
                    self.rotate_in(conn, &request)
                })?,
            }
        };
        if let RotateOutcome::Decided {
            decision: RotationDecision::Rotate { next },
            ..
        } = &outcome
        {
            let next = TokenLocation {
                generation: *next,
                ..location
            };
            self.locations().note(&successor, next, written);
        }
        Ok(outcome)
    }

    /// PostgreSQL: the rotation of a successor this process issued, planned
    /// from the session row its rotation wrote ([`crate::locations`]) and
    /// written in one statement that writes only if the row is unchanged
    /// ([`RotateGuarded`]): one round trip, no lock held across round
    /// trips. Only for the common case, a success counted in the session's
    /// run (no revocation, no event, no DPoP key). `None`: nothing was
    /// written, rotate as usual (the row changed, or the case is another,
    /// or nothing was noted).
    ///
    /// The statement commits on its own, so the request claims its commit
    /// before it is sent ([`deadline::may_commit`]); if the guard then
    /// fails, the usual transaction follows under the same claim, and still
    /// rolls back if the deadline passes before its commit.
    fn rotate_guarded(
        &self,
        conn: &mut AnyConnection,
        request: &RotateRequest,
    ) -> Result<Option<(RotateOutcome, Option<SessionRow>)>, DbError> {
        let location = &request.location;
        if location.bound || !self.audit_trail() || !matches!(conn, AnyConnection::Postgresql(_)) {
            return Ok(None);
        }
        let Some(before) = self.locations().session(&request.presented) else {
            return Ok(None);
        };
        let state = before.state()?;
        if state.bound_to.is_some() {
            return Ok(None);
        }
        let planned = plan(
            &state,
            PresentedToken {
                generation: location.generation,
                proof_key: None,
            },
            &sighting(request),
            &request.policy,
            request.now,
        );
        let RotationDecision::Rotate { next } = planned.decision else {
            return Ok(None);
        };
        if planned.outcome != RefreshOutcome::Success
            || planned.revoke.is_some()
            || planned.event.is_some()
        {
            return Ok(None);
        }
        let mut row = SessionRow::clone(&before);
        row.set_state(&planned.state);
        count_in_run(&mut row, request);
        if !deadline::may_commit() {
            return Err(DbError::Timeout(
                "the request's deadline passed before the commit",
            ));
        }
        let Some(user) = rotate_if_unchanged(conn, &before, &row, request, next)? else {
            return Ok(None);
        };
        self.locations().count_guarded();
        let outcome = RotateOutcome::Decided {
            decision: planned.decision,
            outcome: planned.outcome,
            presented: location.generation,
            session: row.clone().into_session()?,
            user: user.into_user()?,
            revoked: Vec::new(),
            event: None,
        };
        Ok(Some((outcome, Some(row))))
    }

    /// The rotation's work inside its write transaction.
    ///
    /// With the outcome, on PostgreSQL, the session row as a rotation wrote
    /// it, for the successor's rotation ([`Self::rotate_guarded`]).
    fn rotate_in(
        &self,
        conn: &mut AnyConnection,
        request: &RotateRequest,
    ) -> Result<(RotateOutcome, Option<SessionRow>), DbError> {
        let presented_digest = request.presented.to_hex();
        let location = &request.location;
        let Some((user, mut row)) = lock_user_and_session(conn, location)? else {
            self.audit(conn, request, RefreshOutcome::UnknownToken, None, false)?;
            return Ok((RotateOutcome::UnknownToken, None));
        };
        let now = request.now.as_millis();
        let client = sighting(request);
        let state = row.state()?;
        let proof_key = proven_key(conn, &state, request.proof.as_ref(), request.now)?;
        let planned = plan(
            &state,
            PresentedToken {
                generation: location.generation,
                proof_key,
            },
            &client,
            &request.policy,
            request.now,
        );
        // A success is counted in the session's run, which the session
        // update below writes anyway (see `count_in_run`).
        let on_session = planned.outcome == RefreshOutcome::Success && self.audit_trail();
        let revoked = match planned.revoke {
            Some(revocation) => execute_revocation(conn, &row, revocation, now)?,
            None => Vec::new(),
        };
        row.set_state(&planned.state);
        let mut audited = false;
        match planned.decision {
            RotationDecision::Rotate { next }
                if on_session
                    && revoked.is_empty()
                    && planned.event.is_none()
                    && matches!(conn, AnyConnection::Postgresql(_)) =>
            {
                count_in_run(&mut row, request);
                rotate_in_one_statement(conn, &row, request, &presented_digest, next)?;
                audited = true;
            }
            RotationDecision::Rotate { next } => {
                Fixed::<SpendToken>::new(&[Bind::BigInt(now), Bind::Text(&presented_digest)])
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
                if on_session {
                    count_in_run(&mut row, request);
                }
                write_rotation(conn, &row)?;
            }
            RotationDecision::GraceReplay | RotationDecision::Retry => {
                diesel::update(sessions::table.find(&row.id))
                    .set(sessions::last_used_at.eq(row.last_used_at))
                    .execute(conn)?;
            }
            RotationDecision::Reuse
            | RotationDecision::Anomaly
            | RotationDecision::DpopMismatch
            | RotationDecision::Expired(_)
            | RotationDecision::Revoked => {}
        }
        if let Some(event) = &planned.event {
            record_event(conn, &row, event, "refresh", revoked.len(), request, now)?;
        }
        if !audited {
            self.audit(conn, request, planned.outcome, Some(&row), on_session)?;
        }
        let written = (matches!(planned.decision, RotationDecision::Rotate { .. })
            && matches!(conn, AnyConnection::Postgresql(_)))
        .then(|| row.clone());
        let outcome = RotateOutcome::Decided {
            decision: planned.decision,
            outcome: planned.outcome,
            presented: location.generation,
            session: row.into_session()?,
            user: user.into_user()?,
            revoked: parse_ids(revoked)?,
            event: planned.event.as_ref().map(PlannedEvent::kind),
        };
        Ok((outcome, written))
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
        let Some(location) = find_token(&mut conn, &digest)?
            .map(|found| found.location())
            .transpose()?
        else {
            return Ok(EndOutcome::UnknownToken);
        };
        write_transaction(&mut conn, self.write_lock(), |conn| {
            let Some((_, row)) = lock_user_and_session(conn, &location)? else {
                return Ok(EndOutcome::UnknownToken);
            };
            let (session, user) = (location.session, location.user);
            let now = request.now.as_millis();
            let client = Sighting {
                at: request.now,
                ip: request.client.ip.as_deref(),
                user_agent: request.client.user_agent.as_deref(),
            };
            let state = row.state()?;
            let proof_key = match &request.recorded_key {
                Some(key) => Some(key),
                None => proven_key(conn, &state, request.proof.as_ref(), request.now)?,
            };
            let planned = plan_end(
                &state,
                PresentedToken {
                    generation: location.generation,
                    proof_key,
                },
                &client,
                request.reason,
                &request.policy,
                request.now,
            );
            let revoked = match planned.revoke {
                Some(revocation) => execute_revocation(conn, &row, revocation, now)?,
                None => Vec::new(),
            };
            if let Some(event) = &planned.event {
                let via = match request.reason {
                    EndVia::Logout => "logout",
                    EndVia::ReplacedByLogin => "login",
                };
                let details = events::details(
                    event,
                    via,
                    revoked.len(),
                    &request.client,
                    &request.token,
                    now,
                );
                events::record(conn, &row, event.kind(), details, now)?;
            }
            Ok(match planned.decision {
                EndDecision::Ended => EndOutcome::Ended { session, user },
                EndDecision::AlreadyEnded => EndOutcome::AlreadyEnded { session, user },
                EndDecision::Reused => EndOutcome::Reused {
                    session,
                    user,
                    revoked: parse_ids(revoked)?,
                },
                EndDecision::DpopMismatch => EndOutcome::DpopMismatch { session, user },
            })
        })
    }
}

/// The key the plan may take as proven: that of the request's proof, for a
/// session bound to a key, once its `jti` is recorded here as new. An
/// unbound session ignores the proof (and records nothing).
fn proven_key<'a>(
    conn: &mut AnyConnection,
    state: &SessionState,
    proof: Option<&'a CheckedProof>,
    now: Timestamp,
) -> Result<Option<&'a Jkt>, DbError> {
    match proof {
        Some(proof) if state.bound_to.is_some() => {
            let key = spend_proof(conn, proof, now)?;
            if key.is_none() {
                tracing::info!("DPoP proof refused: its jti was used before");
            }
            Ok(key)
        }
        _ => Ok(None),
    }
}

/// The request's client, as the plan sees it.
fn sighting(request: &RotateRequest) -> Sighting<'_> {
    Sighting {
        at: request.now,
        ip: request.client.ip.as_deref(),
        user_agent: request.client.user_agent.as_deref(),
    }
}

/// PostgreSQL, a success counted in the session's run (no revocation, no
/// event): spends the presented token, inserts the successor and the audit
/// row, and writes the session (`row`, as after the plan and the run count)
/// in one statement ([`RotatePostgres`]): one round trip where the
/// statements one by one took four. The same rows as those statements.
fn rotate_in_one_statement(
    conn: &mut AnyConnection,
    row: &SessionRow,
    request: &RotateRequest,
    presented_digest: &str,
    next: Generation,
) -> Result<(), DbError> {
    let now = request.now.as_millis();
    let successor = request.successor.to_hex();
    let attempt = attempt_of(request, RefreshOutcome::Success, Some(row));
    let audit = NewAuditRow::of(&attempt);
    let rows = successor_binds(now, presented_digest, &successor, row, next, &audit);
    let binds: Vec<Bind<'_>> = rows.into_iter().chain(session_binds(row)).collect();
    Fixed::<RotatePostgres>::new(&binds).execute(conn)?;
    Ok(())
}

/// [`RotateGuarded`]: writes `after` (the plan's state and run count applied
/// to `before`) with the rest of a successful rotation if the session row
/// is still `before`; returns its user then, `None` (nothing written)
/// otherwise.
fn rotate_if_unchanged(
    conn: &mut AnyConnection,
    before: &SessionRow,
    after: &SessionRow,
    request: &RotateRequest,
    next: Generation,
) -> Result<Option<UserRow>, DbError> {
    let AnyConnection::Postgresql(pg) = conn else {
        return Ok(None);
    };
    let now = request.now.as_millis();
    let presented = request.presented.to_hex();
    let successor = request.successor.to_hex();
    let attempt = attempt_of(request, RefreshOutcome::Success, Some(after));
    let audit = NewAuditRow::of(&attempt);
    let guard = [
        Bind::Text(&before.user_id),
        Bind::BigInt(before.generation),
        Bind::BigInt(before.rotated_at),
        Bind::BigInt(before.last_used_at),
        Bind::BigInt(before.expires_at),
        Bind::NullableText(before.rotated_by.as_deref()),
        Bind::NullableText(before.rotated_ip.as_deref()),
        Bind::NullableText(before.last_user_agent.as_deref()),
        Bind::NullableText(before.last_ip.as_deref()),
        Bind::Text(&before.run_ip),
        Bind::Text(&before.run_user_agent),
        Bind::BigInt(before.run_attempts),
        Bind::BigInt(before.run_first_at),
        Bind::BigInt(before.run_last_at),
    ];
    let rest = successor_binds(now, &presented, &successor, after, next, &audit);
    let binds: Vec<Bind<'_>> = session_binds(after)
        .into_iter()
        .chain(guard)
        .chain(rest)
        .collect();
    type UserColumns = (Text, Text, Text, BigInt, Nullable<BigInt>, Nullable<BigInt>);
    let users: Vec<UserRow> = Returning::<RotateGuarded, UserColumns>::new(&binds).load(pg)?;
    Ok(users.into_iter().next())
}

/// The binds of a successful rotation's other writes, in the order of
/// [`RotatePostgres`] and [`RotateGuarded`]: spend the presented token,
/// insert the successor into `row`'s session, insert the audit row.
fn successor_binds<'a>(
    now: i64,
    presented: &'a str,
    successor: &'a str,
    row: &'a SessionRow,
    next: Generation,
    audit: &'a NewAuditRow<'a>,
) -> [Bind<'a>; 14] {
    [
        Bind::BigInt(now),
        Bind::Text(presented),
        Bind::Text(successor),
        Bind::Text(&row.id),
        Bind::BigInt(generation_to_db(next)),
        Bind::BigInt(now),
        Bind::BigInt(row.expires_at),
        Bind::BigInt(audit.at),
        Bind::Text(audit.outcome),
        Bind::Text(&audit.user_id),
        Bind::NullableText(audit.session_id.as_deref()),
        Bind::NullableText(audit.ip),
        Bind::NullableText(audit.user_agent),
        Bind::NullableText(audit.fingerprint),
    ]
}

/// Writes what a rotation changed on the session row (`row` is the state
/// after the plan).
fn write_rotation(conn: &mut AnyConnection, row: &SessionRow) -> Result<(), DbError> {
    // One fixed text, kept prepared (see `fixed.rs`).
    Fixed::<WriteRotation>::new(&session_binds(row)).execute(conn)?;
    Ok(())
}

/// The binds of a session's new state, in the order of the `SET` clauses
/// of [`WriteRotation`] and [`RotatePostgres`], then its id.
fn session_binds(row: &SessionRow) -> [Bind<'_>; 13] {
    [
        Bind::BigInt(row.generation),
        Bind::BigInt(row.rotated_at),
        Bind::BigInt(row.last_used_at),
        Bind::NullableText(row.rotated_by.as_deref()),
        Bind::NullableText(row.rotated_ip.as_deref()),
        Bind::NullableText(row.last_user_agent.as_deref()),
        Bind::NullableText(row.last_ip.as_deref()),
        Bind::Text(&row.run_ip),
        Bind::Text(&row.run_user_agent),
        Bind::BigInt(row.run_attempts),
        Bind::BigInt(row.run_first_at),
        Bind::BigInt(row.run_last_at),
        Bind::Text(&row.id),
    ]
}

/// Records the plan's event about `row`'s session.
fn record_event(
    conn: &mut AnyConnection,
    row: &SessionRow,
    event: &PlannedEvent,
    via: &str,
    revoked_sessions: usize,
    request: &RotateRequest,
    now: i64,
) -> Result<(), DbError> {
    let details = events::details(
        event,
        via,
        revoked_sessions,
        &request.client,
        &request.presented,
        now,
    );
    events::record(conn, row, event.kind(), details, now)
}

/// Finds a token and what the rotation needs of its session.
fn find_token(conn: &mut AnyConnection, digest: &str) -> Result<Option<FoundToken>, DbError> {
    Ok(refresh_tokens::table
        .inner_join(sessions::table)
        .filter(refresh_tokens::digest.eq(digest))
        .select((
            refresh_tokens::generation,
            refresh_tokens::session_id,
            sessions::user_id,
            sessions::dpop_jkt,
        ))
        .first::<FoundToken>(conn)
        .optional()?)
}

/// Inside the transaction: locks the token's user, then its session, and
/// returns both as they are now; `None` when either is gone.
fn lock_user_and_session(
    conn: &mut AnyConnection,
    location: &TokenLocation,
) -> Result<Option<(UserRow, SessionRow)>, DbError> {
    let Some(user) = lock_user(conn, &location.user.to_string())? else {
        return Ok(None);
    };
    Ok(lock_session(conn, &location.session.to_string())?.map(|session| (user, session)))
}

/// Revokes what the plan says: `row`'s session, or every live session of
/// its user. The caller commits it. Returns the sessions revoked.
fn execute_revocation(
    conn: &mut AnyConnection,
    row: &SessionRow,
    revocation: PlannedRevocation,
    now: i64,
) -> Result<Vec<String>, DbError> {
    Ok(match revocation.scope {
        RevocationScope::User => revoke_user_sessions(conn, &row.user_id, now, revocation.reason)?,
        RevocationScope::Session => {
            if revoke_session(conn, &row.id, now, revocation.reason)? == 1 {
                vec![row.id.clone()]
            } else {
                Vec::new()
            }
        }
    })
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
