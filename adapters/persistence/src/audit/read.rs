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
}

impl AuditRow {
    fn into_record(self) -> Result<AuditRecord, DbError> {
        Ok(AuditRecord {
            id: self.id,
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

#[derive(QueryableByName)]
struct NameCount {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct SeenRow {
    #[diesel(sql_type = Text)]
    item: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = BigInt)]
    first_at: i64,
    #[diesel(sql_type = BigInt)]
    last_at: i64,
}

#[derive(QueryableByName)]
struct Distinct {
    #[diesel(sql_type = BigInt)]
    ips: i64,
    #[diesel(sql_type = BigInt)]
    user_agents: i64,
    #[diesel(sql_type = BigInt)]
    sessions: i64,
}

#[derive(QueryableByName)]
struct SessionUseRow {
    #[diesel(sql_type = Text)]
    session_id: String,
    #[diesel(sql_type = Text)]
    user_agent: String,
    #[diesel(sql_type = Nullable<Text>)]
    lowest_ip: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    highest_ip: Option<String>,
}

#[derive(QueryableByName)]
struct Peak {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

const WINDOW: &str = "FROM refresh_audit_daily WHERE user_id = ? AND day_start >= ?";

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The most frequent values of `column` (`ip` or `user_agent`).
fn seen(conn: &mut AnyConnection, column: &str, binds: &[Bind]) -> Result<Vec<Seen>, DbError> {
    let sql = format!(
        "SELECT {column} AS item, CAST(SUM(attempts) AS BIGINT) AS n, \
         MIN(first_at) AS first_at, MAX(last_at) AS last_at \
         {WINDOW} AND {column} <> '' GROUP BY {column} \
         ORDER BY n DESC, last_at DESC, item LIMIT {SEEN_LIMIT}"
    );
    Ok(load::<SeenRow>(conn, &sql, binds)?
        .into_iter()
        .map(|r| Seen {
            value: r.item,
            count: count(r.n),
            first_seen: Timestamp::from_millis(r.first_at),
            last_seen: Timestamp::from_millis(r.last_at),
        })
        .collect())
}

/// Aggregates of the user's attempts since `since` (the start of a UTC day)
/// and of their security events since then.
pub(crate) fn activity(
    conn: &mut AnyConnection,
    user: UserId,
    since: Timestamp,
) -> Result<ActivitySummary, DbError> {
    let binds = [
        Bind::Text(user.to_string()),
        Bind::BigInt(since.as_millis()),
    ];
    let mut by_outcome = BTreeMap::new();
    let sql = format!(
        "SELECT outcome AS name, CAST(SUM(attempts) AS BIGINT) AS n {WINDOW} GROUP BY outcome"
    );
    for row in load::<NameCount>(conn, &sql, &binds)? {
        let outcome =
            RefreshOutcome::parse(&row.name).ok_or(DbError::Corrupt("refresh_audit.outcome"))?;
        by_outcome.insert(outcome, count(row.n));
    }
    let ips = seen(conn, "ip", &binds)?;
    let user_agents = seen(conn, "user_agent", &binds)?;
    let sql = format!(
        "SELECT COUNT(DISTINCT NULLIF(ip, '')) AS ips, \
         COUNT(DISTINCT NULLIF(user_agent, '')) AS user_agents, \
         COUNT(DISTINCT NULLIF(session_id, '')) AS sessions {WINDOW}"
    );
    let distinct = load::<Distinct>(conn, &sql, &binds)?
        .into_iter()
        .next()
        .ok_or(DbError::Corrupt("aggregate without a row"))?;
    let sql = format!(
        "SELECT session_id, user_agent, MIN(NULLIF(ip, '')) AS lowest_ip, \
         MAX(NULLIF(ip, '')) AS highest_ip {WINDOW} AND session_id <> '' \
         GROUP BY session_id, user_agent ORDER BY session_id, user_agent \
         LIMIT {SESSION_USES_LIMIT}"
    );
    let session_uses = load::<SessionUseRow>(conn, &sql, &binds)?
        .into_iter()
        .map(|r| SessionUse {
            session_id: r.session_id,
            user_agent: r.user_agent,
            lowest_ip: r.lowest_ip,
            highest_ip: r.highest_ip,
        })
        .collect();
    let sql = "SELECT CAST(COALESCE(MAX(failures), 0) AS BIGINT) AS n \
               FROM refresh_audit_failures WHERE user_id = ? AND hour_start >= ?";
    let peak = load::<Peak>(conn, sql, &binds)?
        .into_iter()
        .next()
        .map_or(0, |p| count(p.n));
    let mut events = BTreeMap::new();
    let sql = "SELECT kind AS name, COUNT(*) AS n FROM security_events \
               WHERE user_id = ? AND created_at >= ? GROUP BY kind";
    for row in load::<NameCount>(conn, sql, &binds)? {
        events.insert(row.name, count(row.n));
    }
    let events_of = |kind: SecurityEventKind| events.get(kind.as_str()).copied().unwrap_or(0);
    Ok(ActivitySummary {
        by_outcome,
        ips,
        user_agents,
        distinct_ips: count(distinct.ips),
        distinct_user_agents: count(distinct.user_agents),
        sessions_seen: count(distinct.sessions),
        session_uses,
        peak_failures_per_hour: peak,
        reuse_events: events_of(SecurityEventKind::TokenReuse),
        anomaly_events: events_of(SecurityEventKind::Anomaly),
    })
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
