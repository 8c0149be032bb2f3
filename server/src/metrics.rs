//! Prometheus metrics, all named `tokenwarden_*`.
//!
//! Code anywhere records through the [`metrics`] facade (`metrics::counter!`
//! and friends); this module installs the one process-wide recorder,
//! describes every metric, samples the gauges at scrape time and counts
//! what the session store decides ([`MeteredSessions`]).
//!
//! **Adding a metric** from another module: call one of the hooks below
//! (or `metrics::counter!(NAME, labels).increment(n)` with a name added to
//! [`describe`]). Hooks exist for what later issues count:
//! [`anomaly_detected`] and [`cleanup_removed`].

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use application::ports::{
    CreateSessionError, CreatedSession, EndOutcome, EndReason, EndRequest, RevokeReason,
    RotateOutcome, RotateRequest, SessionRepository, StoreError, TokenLocation,
};
use application::rate_limit::{Admission, LoginRateLimiter};
use domain::{
    NewSession, RefreshOutcome, RotationDecision, SecurityEventKind, Session, SessionId,
    SessionStatus, Timestamp, TokenDigest, UserId,
};
use password::Argon2Hasher;
use persistence::Database;
use web::middleware::{HTTP_DURATION, HTTP_REQUESTS};
use web::{MetricsSource, PasswordQueue};

pub const REFRESHES: &str = "tokenwarden_refresh_total";
pub const REUSE_DETECTIONS: &str = "tokenwarden_reuse_detections_total";
pub const ANOMALY_DETECTIONS: &str = "tokenwarden_anomaly_detections_total";
pub const REVOCATIONS: &str = "tokenwarden_revocations_total";
pub const CLEANUP_REMOVED: &str = "tokenwarden_cleanup_removed_total";
pub const LOGIN_RATE_LIMITED: &str = "tokenwarden_login_rate_limited_total";
pub const DB_POOL_CONNECTIONS: &str = "tokenwarden_db_pool_connections";
pub const DB_POOL_IDLE: &str = "tokenwarden_db_pool_idle_connections";
pub const DB_POOL_MAX: &str = "tokenwarden_db_pool_max_connections";
pub const DB_POOL_UTILISATION: &str = "tokenwarden_db_pool_utilisation_ratio";
pub const ARGON2_QUEUE: &str = "tokenwarden_argon2_queue_depth";
pub const ARGON2_IN_FLIGHT: &str = "tokenwarden_argon2_in_flight";

/// Latency buckets in seconds: a refresh takes about a millisecond, a
/// login (argon2) tens to hundreds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded in when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the process-wide recorder once and returns its handle. Every
/// later call (several servers in one test process) shares it.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = builder
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.to_owned()), &LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
            }
            describe();
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".to_owned())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "no metrics upkeep thread: histograms fold in at scrapes only");
            }
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route pattern and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency, by method, route pattern and status"
    );
    describe_counter!(
        REFRESHES,
        "Refresh attempts that reached the session store, by audit outcome (success, \
         grace_replay, retry, anomaly_logged, reused, anomaly, dpop_mismatch, expired, revoked, \
         unknown_token); missing or malformed tokens are refused before it and show in \
         tokenwarden_http_requests_total"
    );
    describe_counter!(
        REUSE_DETECTIONS,
        "Rotated refresh tokens presented again (theft evidence), by where"
    );
    describe_counter!(
        ANOMALY_DETECTIONS,
        "Refreshes from a new network and device inside the anomaly window"
    );
    describe_counter!(REVOCATIONS, "Session revocations, by reason");
    describe_counter!(CLEANUP_REMOVED, "Rows removed by the cleanup job, by kind");
    describe_counter!(LOGIN_RATE_LIMITED, "Logins refused with 429");
    describe_gauge!(DB_POOL_CONNECTIONS, "Open database connections");
    describe_gauge!(DB_POOL_IDLE, "Idle database connections");
    describe_gauge!(
        DB_POOL_MAX,
        "Largest number of database connections the pool opens"
    );
    describe_gauge!(
        DB_POOL_UTILISATION,
        "Connections in use divided by the pool's maximum"
    );
    describe_gauge!(
        ARGON2_QUEUE,
        "Password hashes or checks waiting for a worker (TOKENWARDEN_HASH_QUEUE bounds it)"
    );
    describe_counter!(
        web::password_queue::PASSWORD_QUEUE_FULL,
        "Requests answered 503 because the password queue was full"
    );
    describe_gauge!(ARGON2_IN_FLIGHT, "Password hashes or checks running");
    describe_gauge!(
        webhook::metrics::PENDING,
        "Security events in the webhook outbox: waiting, scheduled for a retry, or being sent"
    );
    describe_counter!(
        webhook::metrics::DELIVERED,
        "Security events the webhook receiver acknowledged with a 2xx"
    );
    describe_counter!(
        webhook::metrics::FAILED,
        "Security events given up without a 2xx (24 hours of retries)"
    );
    describe_counter!(
        webhook::metrics::ATTEMPT_FAILURES,
        "Webhook attempts that failed (an error, a timeout or a non-2xx answer)"
    );
}

/// Hook: an anomalous refresh was detected (and answered per
/// `TOKENWARDEN_ANOMALY_RESPONSE`).
pub fn anomaly_detected() {
    counter!(ANOMALY_DETECTIONS).increment(1);
}

/// The cleanup job removed `count` rows of `kind` (`refresh_tokens`,
/// `sessions`, `revocations`, `audit`); called after each pass of `serve`'s
/// job.
pub fn cleanup_removed(kind: &'static str, count: u64) {
    counter!(CLEANUP_REMOVED, "kind" => kind).increment(count);
}

fn revoked(reason: &'static str, count: u64) {
    counter!(REVOCATIONS, "reason" => reason).increment(count);
}

fn count(sessions: &[SessionId]) -> u64 {
    u64::try_from(sessions.len()).unwrap_or(u64::MAX)
}

/// `/metrics` of one server: samples its gauges, then renders everything.
pub struct PrometheusMetrics {
    handle: PrometheusHandle,
    db: Database,
    hasher: Arc<Argon2Hasher>,
    password_queue: Option<Arc<PasswordQueue>>,
}

impl PrometheusMetrics {
    pub fn new(db: Database, hasher: Arc<Argon2Hasher>) -> Self {
        Self {
            handle: recorder(),
            db,
            hasher,
            password_queue: None,
        }
    }

    /// Also reports the requests waiting in the HTTP password queue.
    #[must_use]
    pub fn with_password_queue(mut self, queue: Arc<PasswordQueue>) -> Self {
        self.password_queue = Some(queue);
        self
    }

    fn sample(&self) {
        let pool = self.db.pool_state();
        gauge!(DB_POOL_CONNECTIONS).set(f64::from(pool.connections));
        gauge!(DB_POOL_IDLE).set(f64::from(pool.idle));
        gauge!(DB_POOL_MAX).set(f64::from(pool.max_size));
        let in_use = pool.connections.saturating_sub(pool.idle);
        gauge!(DB_POOL_UTILISATION).set(f64::from(in_use) / f64::from(pool.max_size.max(1)));
        // Behind the HTTP queue, a request holds its turn for its whole use
        // case (the argon2 computation and the database work around it):
        // that is what runs, but never more than the hasher's workspaces
        // at once (there are three turns per workspace, and a turn beyond
        // them waits for one, counted in the hasher's queue); the hasher's
        // own counts cover other callers.
        let (queued, running) = self
            .password_queue
            .as_ref()
            .map_or((0, 0), |q| (q.waiting(), q.running()));
        gauge!(ARGON2_QUEUE).set((queued + self.hasher.queue_depth()) as f64);
        let running = running.min(self.hasher.max_concurrent());
        gauge!(ARGON2_IN_FLIGHT).set(running.max(self.hasher.in_flight()) as f64);
    }
}

impl MetricsSource for PrometheusMetrics {
    fn render(&self) -> String {
        self.sample();
        self.handle.render()
    }
}

/// The session store, counting what it decides and logging theft
/// evidence (ids only).
pub struct MeteredSessions<S>(pub S);

/// The metric label of a rotation: its audit outcome's name.
fn refresh_outcome(outcome: &RotateOutcome) -> RefreshOutcome {
    match outcome {
        RotateOutcome::UnknownToken => RefreshOutcome::UnknownToken,
        RotateOutcome::Decided { outcome, .. } => *outcome,
    }
}

impl<S: SessionRepository> SessionRepository for MeteredSessions<S> {
    fn create(
        &self,
        session: NewSession,
        token: TokenDigest,
        max_sessions: u32,
    ) -> Result<CreatedSession, CreateSessionError> {
        let created = self.0.create(session, token, max_sessions)?;
        revoked("evicted", count(&created.evicted));
        Ok(created)
    }

    fn locate(&self, token: &TokenDigest) -> Result<Option<TokenLocation>, StoreError> {
        let found = self.0.locate(token)?;
        if found.is_none() {
            counter!(REFRESHES, "outcome" => RefreshOutcome::UnknownToken.as_str()).increment(1);
        }
        Ok(found)
    }

    fn rotate(&self, request: RotateRequest) -> Result<RotateOutcome, StoreError> {
        let outcome = self.0.rotate(request)?;
        let label = refresh_outcome(&outcome).as_str();
        counter!(REFRESHES, "outcome" => label).increment(1);
        if let RotateOutcome::Decided {
            event: Some(SecurityEventKind::Anomaly),
            ..
        } = &outcome
        {
            anomaly_detected();
        }
        if let RotateOutcome::Decided {
            decision: RotationDecision::Reuse | RotationDecision::Anomaly,
            session,
            user,
            revoked: gone,
            ..
        } = &outcome
        {
            tracing::warn!(
                user_id = %user.id,
                session_id = %session.id,
                "refresh token reuse: theft response applied"
            );
            counter!(REUSE_DETECTIONS, "via" => "refresh").increment(1);
            revoked("reuse", count(gone));
        }
        Ok(outcome)
    }

    fn end_by_token(&self, request: EndRequest) -> Result<EndOutcome, StoreError> {
        let reason = match request.reason {
            EndReason::Logout => "logout",
            EndReason::ReplacedByLogin => "replaced_by_login",
        };
        let outcome = self.0.end_by_token(request)?;
        match &outcome {
            EndOutcome::Ended { .. } => revoked(reason, 1),
            EndOutcome::Reused {
                session,
                user,
                revoked: gone,
            } => {
                tracing::warn!(
                    user_id = %user,
                    session_id = %session,
                    "refresh token reuse at {reason}: theft response applied"
                );
                counter!(REUSE_DETECTIONS, "via" => reason).increment(1);
                revoked("reuse", count(gone));
            }
            EndOutcome::UnknownToken
            | EndOutcome::AlreadyEnded { .. }
            | EndOutcome::DpopMismatch { .. } => {}
        }
        Ok(outcome)
    }

    fn revoke_all(
        &self,
        user: UserId,
        reason: RevokeReason,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        let label = match reason {
            RevokeReason::LogoutAll => "revoke_all",
            RevokeReason::Admin { .. } => "admin_revoke",
        };
        let gone = self.0.revoke_all(user, reason, now)?;
        revoked(label, count(&gone));
        Ok(gone)
    }

    fn revoke_one(
        &self,
        user: UserId,
        session: SessionId,
        idle_ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = self.0.revoke_one(user, session, idle_ttl, now)?;
        if done {
            revoked("revoke_one", 1);
        }
        Ok(done)
    }

    fn list_live(
        &self,
        user: UserId,
        idle_ttl: Duration,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        self.0.list_live(user, idle_ttl, now)
    }

    fn status(
        &self,
        session: SessionId,
        idle_ttl: Duration,
        now: Timestamp,
    ) -> Result<SessionStatus, StoreError> {
        self.0.status(session, idle_ttl, now)
    }
}

/// The login rate limiter, counting refusals.
pub struct MeteredLimiter(pub Arc<dyn LoginRateLimiter>);

impl LoginRateLimiter for MeteredLimiter {
    fn reserve(&self, user: Option<&str>, ip: Option<&str>, now: Timestamp) -> Admission {
        let admission = self.0.reserve(user, ip, now);
        if matches!(admission, Admission::Limited { .. }) {
            counter!(LOGIN_RATE_LIMITED).increment(1);
        }
        admission
    }

    fn reset(&self, user: &str) {
        self.0.reset(user);
    }

    fn release(&self, user: &str, now: Timestamp) {
        self.0.release(user, now);
    }
}
