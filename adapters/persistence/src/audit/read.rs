//! Reading the trail back: pages of audit rows and security events (keyset
//! on `(time, id)`, newest first), and the aggregates of a user's activity.
//!
//! The aggregates come from `refresh_audit_daily` and
//! `refresh_audit_failures`, which triggers keep in step with
//! `refresh_audit`: a user with 100 000 attempts in the window costs the
//! distinct (outcome, session, IP, user agent) combinations per day, a few
//! hundred to a few thousand rows in practice, not 100 000 (see
//! `benches/analysis.rs`).

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use domain::{
    ActivitySummary, AuditRecord, Cursor, RefreshAttempt, RefreshOutcome, SecurityEvent,
    SecurityEventKind, Seen, SessionUse, Timestamp, TokenFingerprint, UserId,
};

use super::schema::{refresh_audit, security_events};
use super::sql::{load, Bind};
use crate::connection::AnyConnection;
use crate::error::DbError;

/// How many IPs and user agents the analysis lists (the most frequent).
pub(crate) const SEEN_LIMIT: i64 = 100;
/// How many (session, user agent) pairs the shared-session rule looks at.
const SESSION_USES_LIMIT: i64 = 1_000;

#[derive(Queryable, Selectable)]
#[diesel(table_name = refresh_audit)]
struct AuditRow {
    id: i64,
    at: i64,
    outcome: String,
    user_id: String,
    session_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    fingerprint: Option<String>,
    count: i64,
}

impl AuditRow {
    fn into_record(self) -> Result<AuditRecord, DbError> {
        Ok(AuditRecord {
            id: self.id,
            count: u64::try_from(self.count)
                .map_err(|_| DbError::Corrupt("refresh_audit.count"))?,
            attempt: RefreshAttempt {
                at: Timestamp::from_millis(self.at),
                outcome: RefreshOutcome::parse(&self.outcome)
                    .ok_or(DbError::Corrupt("refresh_audit.outcome"))?,
                user_id: Some(self.user_id)
                    .filter(|u| !u.is_empty())
                    .map(|u| {
                        u.parse()
                            .map_err(|_| DbError::Corrupt("refresh_audit.user_id"))
                    })
                    .transpose()?,
                session_id: self
                    .session_id
                    .map(|s| {
                        s.parse()
                            .map_err(|_| DbError::Corrupt("refresh_audit.session_id"))
                    })
                    .transpose()?,
                ip: self.ip,
                user_agent: self.user_agent,
                fingerprint: self
                    .fingerprint
                    .map(|f| {
                        TokenFingerprint::from_stored(&f)
                            .ok_or(DbError::Corrupt("refresh_audit.fingerprint"))
                    })
                    .transpose()?,
            },
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = security_events)]
struct EventRow {
    id: i64,
    user_id: String,
    session_id: Option<String>,
    kind: String,
    details: String,
    created_at: i64,
}

impl EventRow {
    fn into_event(self) -> Result<SecurityEvent, DbError> {
        Ok(SecurityEvent {
            id: self.id,
            user_id: self
                .user_id
                .parse()
                .map_err(|_| DbError::Corrupt("security_events.user_id"))?,
            session_id: self
                .session_id
                .map(|s| {
                    s.parse()
                        .map_err(|_| DbError::Corrupt("security_events.session_id"))
                })
                .transpose()?,
            kind: SecurityEventKind::parse(&self.kind)
                .ok_or(DbError::Corrupt("security_events.kind"))?,
            details: self.details,
            created_at: Timestamp::from_millis(self.created_at),
        })
    }
}

/// The event of `id`, if it exists (the webhook outbox names events by id).
pub(crate) fn security_event(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Option<SecurityEvent>, DbError> {
    security_events::table
        .find(id)
        .select(EventRow::as_select())
        .first(conn)
        .optional()?
        .map(EventRow::into_event)
        .transpose()
}

/// The keyset bound of a page: strictly older than the cursor; the first
/// page is "older than the end of time".
fn bound(before: Option<Cursor>) -> (i64, i64) {
    before.map_or((i64::MAX, i64::MAX), |c| (c.at.as_millis(), c.id))
}

pub(crate) fn refresh_logs(
    conn: &mut AnyConnection,
    user: UserId,
    before: Option<Cursor>,
    limit: u32,
) -> Result<Vec<AuditRecord>, DbError> {
    let (at, id) = bound(before);
    refresh_audit::table
        .filter(refresh_audit::user_id.eq(user.to_string()))
        .filter(
            refresh_audit::at
                .lt(at)
                .or(refresh_audit::at.eq(at).and(refresh_audit::id.lt(id))),
        )
        .order((refresh_audit::at.desc(), refresh_audit::id.desc()))
        .limit(i64::from(limit))
        .select(AuditRow::as_select())
        .load(conn)?
        .into_iter()
        .map(AuditRow::into_record)
        .collect()
}

pub(crate) fn security_events(
    conn: &mut AnyConnection,
    user: Option<UserId>,
    before: Option<Cursor>,
    limit: u32,
) -> Result<Vec<SecurityEvent>, DbError> {
    let (at, id) = bound(before);
    let older = security_events::created_at
        .lt(at)
        .or(security_events::created_at
            .eq(at)
            .and(security_events::id.lt(id)));
    let order = (
        security_events::created_at.desc(),
        security_events::id.desc(),
    );
    let rows: Vec<EventRow> = match user {
        Some(user) => security_events::table
            .filter(security_events::user_id.eq(user.to_string()))
            .filter(older)
            .order(order)
            .limit(i64::from(limit))
            .select(EventRow::as_select())
            .load(conn)?,
        None => security_events::table
            .filter(older)
            .order(order)
            .limit(i64::from(limit))
            .select(EventRow::as_select())
            .load(conn)?,
    };
    rows.into_iter().map(EventRow::into_event).collect()
}

/// Rows per outcome (tests only).
#[cfg(any(test, feature = "testing"))]
#[derive(QueryableByName)]
struct NameCount {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// One row of the analysis query: `part` says which aggregate it belongs
/// to and what the other columns mean (see [`ACTIVITY`]).
#[derive(QueryableByName)]
struct Part {
    #[diesel(sql_type = Text)]
    part: String,
    #[diesel(sql_type = Text)]
    a: String,
    #[diesel(sql_type = Text)]
    b: String,
    #[diesel(sql_type = Nullable<Text>)]
    c: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    d: Option<String>,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = BigInt)]
    first_at: i64,
    #[diesel(sql_type = BigInt)]
    last_at: i64,
}

/// Every aggregate of the analysis in one statement, so that the user's
/// daily rows and the open runs of successes on their sessions (together
/// every audit row of theirs, see `migrations/*/…000007…`) are read once
/// (`w`, materialised) and the database is asked once. Parts:
/// * `outcome`: a = outcome, n = attempts;
/// * `ip`, `ua`: a = value, n = attempts, first/last seen (the most
///   frequent [`SEEN_LIMIT`]);
/// * `distinct`: a = `ip`, `ua` or `session`, n = how many different;
/// * `session`: a = session, b = user agent, c/d = lowest/highest IP
///   ([`SESSION_USES_LIMIT`] pairs);
/// * `peak`: n = most failures in one clock hour;
/// * `event`: a = security event kind, n = how many.
///
/// Binds: user and window start, four times (daily rows, runs, failures,
/// events).
const ACTIVITY: &str = "\
WITH w AS MATERIALIZED (\
  SELECT outcome, session_id, ip, user_agent, attempts, first_at, last_at \
  FROM refresh_audit_daily WHERE user_id = ? AND day_start >= ? \
  UNION ALL SELECT 'success', id, run_ip, run_user_agent, run_attempts, run_first_at, \
  run_last_at FROM sessions WHERE user_id = ? AND run_first_at >= ? AND run_attempts > 0) \
SELECT 'outcome' AS part, outcome AS a, '' AS b, CAST(NULL AS TEXT) AS c, \
  CAST(NULL AS TEXT) AS d, CAST(SUM(attempts) AS BIGINT) AS n, \
  CAST(0 AS BIGINT) AS first_at, CAST(0 AS BIGINT) AS last_at \
  FROM w GROUP BY outcome \
UNION ALL SELECT * FROM (SELECT 'ip', ip, '', CAST(NULL AS TEXT), CAST(NULL AS TEXT), \
  CAST(SUM(attempts) AS BIGINT), MIN(first_at), MAX(last_at) FROM w WHERE ip <> '' \
  GROUP BY ip ORDER BY 6 DESC, 8 DESC, 2 LIMIT {seen}) AS ips \
UNION ALL SELECT * FROM (SELECT 'ua', user_agent, '', CAST(NULL AS TEXT), \
  CAST(NULL AS TEXT), CAST(SUM(attempts) AS BIGINT), MIN(first_at), MAX(last_at) \
  FROM w WHERE user_agent <> '' GROUP BY user_agent ORDER BY 6 DESC, 8 DESC, 2 \
  LIMIT {seen}) AS uas \
UNION ALL SELECT 'distinct', 'ip', '', CAST(NULL AS TEXT), CAST(NULL AS TEXT), \
  COUNT(DISTINCT NULLIF(ip, '')), CAST(0 AS BIGINT), CAST(0 AS BIGINT) FROM w \
UNION ALL SELECT 'distinct', 'ua', '', CAST(NULL AS TEXT), CAST(NULL AS TEXT), \
  COUNT(DISTINCT NULLIF(user_agent, '')), CAST(0 AS BIGINT), CAST(0 AS BIGINT) FROM w \
UNION ALL SELECT 'distinct', 'session', '', CAST(NULL AS TEXT), CAST(NULL AS TEXT), \
  COUNT(DISTINCT NULLIF(session_id, '')), CAST(0 AS BIGINT), CAST(0 AS BIGINT) FROM w \
UNION ALL SELECT * FROM (SELECT 'session', session_id, user_agent, MIN(NULLIF(ip, '')), \
  MAX(NULLIF(ip, '')), CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT) FROM w \
  WHERE session_id <> '' GROUP BY session_id, user_agent ORDER BY 2, 3 \
  LIMIT {sessions}) AS uses \
UNION ALL SELECT 'peak', '', '', CAST(NULL AS TEXT), CAST(NULL AS TEXT), \
  CAST(COALESCE(MAX(failures), 0) AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT) \
  FROM refresh_audit_failures WHERE user_id = ? AND hour_start >= ? \
UNION ALL SELECT 'event', kind, '', CAST(NULL AS TEXT), CAST(NULL AS TEXT), COUNT(*), \
  CAST(0 AS BIGINT), CAST(0 AS BIGINT) \
  FROM security_events WHERE user_id = ? AND created_at >= ? GROUP BY kind";

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn seen(part: Part) -> Seen {
    Seen {
        value: part.a,
        count: count(part.n),
        first_seen: Timestamp::from_millis(part.first_at),
        last_seen: Timestamp::from_millis(part.last_at),
    }
}

/// Aggregates of the user's attempts since `since` (the start of a UTC day)
/// and of their security events since then.
pub(crate) fn activity(
    conn: &mut AnyConnection,
    user: UserId,
    since: Timestamp,
) -> Result<ActivitySummary, DbError> {
    let sql = ACTIVITY
        .replace("{seen}", &SEEN_LIMIT.to_string())
        .replace("{sessions}", &SESSION_USES_LIMIT.to_string());
    let window = [
        Bind::Text(user.to_string()),
        Bind::BigInt(since.as_millis()),
    ];
    let binds: Vec<Bind> = window.iter().cycle().take(8).cloned().collect();
    let mut summary = ActivitySummary::default();
    let mut events = BTreeMap::new();
    for part in load::<Part>(conn, &sql, &binds)? {
        match (part.part.as_str(), part.a.as_str()) {
            ("outcome", name) => {
                let outcome =
                    RefreshOutcome::parse(name).ok_or(DbError::Corrupt("refresh_audit.outcome"))?;
                summary.by_outcome.insert(outcome, count(part.n));
            }
            ("ip", _) => summary.ips.push(seen(part)),
            ("ua", _) => summary.user_agents.push(seen(part)),
            ("distinct", "ip") => summary.distinct_ips = count(part.n),
            ("distinct", "ua") => summary.distinct_user_agents = count(part.n),
            ("distinct", _) => summary.sessions_seen = count(part.n),
            ("session", _) => summary.session_uses.push(SessionUse {
                session_id: part.a,
                user_agent: part.b,
                lowest_ip: part.c,
                highest_ip: part.d,
            }),
            ("peak", _) => summary.peak_failures_per_hour = count(part.n),
            _ => {
                events.insert(part.a, count(part.n));
            }
        }
    }
    // UNION ALL keeps each part's rows in the order its ORDER BY gave, but
    // no standard promises it: sort the lists again.
    let by_frequency = |x: &Seen, y: &Seen| {
        y.count
            .cmp(&x.count)
            .then(y.last_seen.cmp(&x.last_seen))
            .then(x.value.cmp(&y.value))
    };
    summary.ips.sort_by(by_frequency);
    summary.user_agents.sort_by(by_frequency);
    let events_of = |kind: SecurityEventKind| events.get(kind.as_str()).copied().unwrap_or(0);
    summary.reuse_events = events_of(SecurityEventKind::TokenReuse);
    summary.anomaly_events = events_of(SecurityEventKind::Anomaly);
    summary.reuse_after_end_events = events_of(SecurityEventKind::ReuseAfterEnd);
    summary.dpop_mismatch_events = events_of(SecurityEventKind::DpopMismatch);
    Ok(summary)
}

/// Rows per outcome over the whole trail (tests only).
#[cfg(any(test, feature = "testing"))]
pub(crate) fn outcome_counts(conn: &mut AnyConnection) -> Result<BTreeMap<String, u64>, DbError> {
    let sql = "SELECT outcome AS name, COUNT(*) AS n FROM refresh_audit GROUP BY outcome";
    Ok(load::<NameCount>(conn, sql, &[])?
        .into_iter()
        .map(|r| (r.name, count(r.n)))
        .collect())
}

/// Requests per outcome (the rows' counts added up; tests only).
#[cfg(any(test, feature = "testing"))]
pub(crate) fn request_counts(conn: &mut AnyConnection) -> Result<BTreeMap<String, u64>, DbError> {
    let sql = "SELECT outcome AS name, CAST(SUM(count) AS BIGINT) AS n FROM refresh_audit GROUP BY outcome";
    Ok(load::<NameCount>(conn, sql, &[])?
        .into_iter()
        .map(|r| (r.name, count(r.n)))
        .collect())
}
