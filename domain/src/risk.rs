//! Risk scoring: how likely it is that a user's refresh tokens are being
//! abused, from what the audit trail says about a window of time.
//!
//! [`assess`] is a pure function of an [`ActivitySummary`] (aggregates the
//! storage computes over the audit rows of the window) and the
//! [`RiskThresholds`]. Each rule that fires adds points and a reason; the
//! level follows from the points, except that any reuse or anomaly event
//! makes it `high` outright. The rules are documented in
//! `docs/risk-scoring.md`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use crate::audit::RefreshOutcome;
use crate::time::Timestamp;
use crate::user_agent::UserAgentFamily;

/// How often one value (an IP, a user agent) occurs in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub value: String,
    pub count: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

/// One user agent a session was used with, and the lowest and highest IP
/// (as text) it was used from with it: enough to tell one IP from several
/// without listing them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUse {
    pub session_id: String,
    pub user_agent: String,
    pub lowest_ip: Option<String>,
    pub highest_ip: Option<String>,
}

/// What the audit trail says about one user in a window.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActivitySummary {
    /// Attempts per outcome; outcomes that did not occur may be absent.
    pub by_outcome: BTreeMap<RefreshOutcome, u64>,
    /// The most frequent IPs (bounded list), most attempts first.
    pub ips: Vec<Seen>,
    /// The most frequent user agents (bounded list), most attempts first.
    pub user_agents: Vec<Seen>,
    /// How many different IPs and user agents occur (not bounded).
    pub distinct_ips: u64,
    pub distinct_user_agents: u64,
    /// Sessions that attempts were attributed to.
    pub sessions_seen: u64,
    /// (session, user agent) pairs with their IP range (bounded list).
    pub session_uses: Vec<SessionUse>,
    /// The most failed attempts within one clock hour.
    pub peak_failures_per_hour: u64,
    /// Security events of kind `token_reuse` and `anomaly`.
    pub reuse_events: u64,
    pub anomaly_events: u64,
    /// Security events of kind `reuse_after_end`: a rotated token of a
    /// session that was ended after that rotation (steal-then-logout).
    pub reuse_after_end_events: u64,
    /// Security events of kind `dpop_mismatch`: a bound session's token
    /// without a proof by its key (refused, nothing spent).
    pub dpop_mismatch_events: u64,
}

impl ActivitySummary {
    pub fn count(&self, outcome: RefreshOutcome) -> u64 {
        self.by_outcome.get(&outcome).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.by_outcome.values().sum()
    }

    pub fn succeeded(&self) -> u64 {
        self.by_outcome
            .iter()
            .filter(|(o, _)| o.succeeded())
            .map(|(_, n)| n)
            .sum()
    }

    pub fn failed(&self) -> u64 {
        self.total() - self.succeeded()
    }

    /// Sessions used from at least two IPs *and* two user-agent families.
    pub fn shared_sessions(&self) -> u64 {
        let mut by_session: HashMap<&str, (HashSet<UserAgentFamily>, HashSet<&str>)> =
            HashMap::new();
        for u in &self.session_uses {
            let (families, ips) = by_session.entry(&u.session_id).or_default();
            families.insert(UserAgentFamily::of(&u.user_agent));
            ips.extend(u.lowest_ip.as_deref());
            ips.extend(u.highest_ip.as_deref());
        }
        let shared = by_session
            .values()
            .filter(|(families, ips)| families.len() >= 2 && ips.len() >= 2)
            .count();
        u64::try_from(shared).unwrap_or(u64::MAX)
    }
}

/// Where the rules draw their lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskThresholds {
    /// Failed attempts within one clock hour that make a burst.
    pub burst_failures_per_hour: u64,
    /// Distinct IPs from which "many networks" starts.
    pub many_networks: u64,
    /// The failure-ratio rule needs at least this many attempts...
    pub failure_ratio_min_attempts: u64,
    /// ...of which at least this percentage failed.
    pub failure_ratio_percent: u64,
}

impl Default for RiskThresholds {
    fn default() -> Self {
        Self {
            burst_failures_per_hour: 20,
            many_networks: 5,
            failure_ratio_min_attempts: 10,
            failure_ratio_percent: 50,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RiskLevel {
    Low,
    Medium,
    High,
}

impl RiskLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// Why the score is what it is: one entry per rule that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RiskReason {
    TokenReuse { events: u64 },
    Anomaly { events: u64 },
    ReuseAfterEnd { events: u64 },
    DpopMismatch { events: u64 },
    SharedSession { sessions: u64 },
    FailureBurst { peak_per_hour: u64 },
    MostlyFailures { failed: u64, total: u64 },
    RevokedSessionUse { attempts: u64 },
    ManyNetworks { ips: u64 },
}

impl RiskReason {
    /// The points this rule adds to the score.
    pub fn points(&self) -> u32 {
        match self {
            Self::TokenReuse { .. } | Self::ReuseAfterEnd { .. } => 60,
            Self::Anomaly { .. } => 50,
            Self::SharedSession { .. } | Self::FailureBurst { .. } | Self::DpopMismatch { .. } => {
                30
            }
            Self::MostlyFailures { .. } => 20,
            Self::RevokedSessionUse { .. } | Self::ManyNetworks { .. } => 10,
        }
    }

    /// A stable machine name of the rule.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TokenReuse { .. } => "token_reuse",
            Self::Anomaly { .. } => "anomaly",
            Self::ReuseAfterEnd { .. } => "reuse_after_end",
            Self::DpopMismatch { .. } => "dpop_mismatch",
            Self::SharedSession { .. } => "shared_session",
            Self::FailureBurst { .. } => "failure_burst",
            Self::MostlyFailures { .. } => "mostly_failures",
            Self::RevokedSessionUse { .. } => "revoked_session_use",
            Self::ManyNetworks { .. } => "many_networks",
        }
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

impl fmt::Display for RiskReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TokenReuse { events } => write!(
                f,
                "{}: a refresh token that had already been rotated was presented again \
                 (theft evidence; sessions were revoked)",
                plural(*events, "token reuse event", "token reuse events")
            ),
            Self::Anomaly { events } => write!(
                f,
                "{}: a session was used from another network and device shortly after \
                 its last use",
                plural(*events, "anomaly event", "anomaly events")
            ),
            Self::ReuseAfterEnd { events } => write!(
                f,
                "{}: a rotated refresh token came back after its session was logged out \
                 (someone else used and ended the session)",
                plural(
                    *events,
                    "reuse-after-logout event",
                    "reuse-after-logout events"
                )
            ),
            Self::DpopMismatch { events } => write!(
                f,
                "{}: a DPoP-bound session's refresh token was presented without a proof \
                 by its key (refused)",
                plural(*events, "DPoP mismatch", "DPoP mismatches")
            ),
            Self::SharedSession { sessions } => write!(
                f,
                "{} used from several networks and devices",
                plural(*sessions, "session", "sessions")
            ),
            Self::FailureBurst { peak_per_hour } => write!(
                f,
                "burst of failures: {} within one hour",
                plural(*peak_per_hour, "failed refresh", "failed refreshes")
            ),
            Self::MostlyFailures { failed, total } => {
                write!(f, "{failed} of {total} refresh attempts failed")
            }
            Self::RevokedSessionUse { attempts } => write!(
                f,
                "{} with tokens of sessions that had already ended",
                plural(*attempts, "refresh attempt", "refresh attempts")
            ),
            Self::ManyNetworks { ips } => {
                write!(f, "refreshes came from {ips} different IP addresses")
            }
        }
    }
}

/// The verdict: level, score (0–100) and the reasons behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskAssessment {
    pub level: RiskLevel,
    pub score: u32,
    pub reasons: Vec<RiskReason>,
}

/// Scores fired rules at or above this as `high`…
const HIGH_SCORE: u32 = 60;
/// …and at or above this as `medium`.
const MEDIUM_SCORE: u32 = 25;

/// Applies every rule to `summary`.
pub fn assess(summary: &ActivitySummary, thresholds: &RiskThresholds) -> RiskAssessment {
    let mut reasons = Vec::new();
    if summary.reuse_events > 0 {
        reasons.push(RiskReason::TokenReuse {
            events: summary.reuse_events,
        });
    }
    if summary.anomaly_events > 0 {
        reasons.push(RiskReason::Anomaly {
            events: summary.anomaly_events,
        });
    }
    if summary.reuse_after_end_events > 0 {
        reasons.push(RiskReason::ReuseAfterEnd {
            events: summary.reuse_after_end_events,
        });
    }
    if summary.dpop_mismatch_events > 0 {
        reasons.push(RiskReason::DpopMismatch {
            events: summary.dpop_mismatch_events,
        });
    }
    let shared = summary.shared_sessions();
    if shared > 0 {
        reasons.push(RiskReason::SharedSession { sessions: shared });
    }
    if summary.peak_failures_per_hour >= thresholds.burst_failures_per_hour {
        reasons.push(RiskReason::FailureBurst {
            peak_per_hour: summary.peak_failures_per_hour,
        });
    }
    let (failed, total) = (summary.failed(), summary.total());
    if total >= thresholds.failure_ratio_min_attempts
        && failed.saturating_mul(100) >= thresholds.failure_ratio_percent.saturating_mul(total)
    {
        reasons.push(RiskReason::MostlyFailures { failed, total });
    }
    let revoked = summary.count(RefreshOutcome::Revoked);
    if revoked > 0 {
        reasons.push(RiskReason::RevokedSessionUse { attempts: revoked });
    }
    if summary.distinct_ips >= thresholds.many_networks {
        reasons.push(RiskReason::ManyNetworks {
            ips: summary.distinct_ips,
        });
    }
    let score = reasons.iter().map(RiskReason::points).sum::<u32>().min(100);
    let theft = summary.reuse_events > 0
        || summary.anomaly_events > 0
        || summary.reuse_after_end_events > 0;
    let level = if theft || score >= HIGH_SCORE {
        RiskLevel::High
    } else if score >= MEDIUM_SCORE {
        RiskLevel::Medium
    } else {
        RiskLevel::Low
    };
    RiskAssessment {
        level,
        score,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reuse_after_logout_is_high_and_a_dpop_mismatch_is_counted() {
        let after_end = ActivitySummary {
            reuse_after_end_events: 1,
            ..ActivitySummary::default()
        };
        let a = assess(&after_end, &RiskThresholds::default());
        assert_eq!(a.level, RiskLevel::High);
        assert_eq!(a.reasons[0].code(), "reuse_after_end");
        let mismatch = ActivitySummary {
            dpop_mismatch_events: 2,
            ..ActivitySummary::default()
        };
        let m = assess(&mismatch, &RiskThresholds::default());
        assert_eq!(m.level, RiskLevel::Medium);
        assert_eq!(m.reasons[0].code(), "dpop_mismatch");
    }

    const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0";
    const FIREFOX_MINOR: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.1";
    const CURL: &str = "curl/8.5.0";

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_millis(secs * 1_000)
    }

    fn seen(value: &str, count: u64) -> Seen {
        Seen {
            value: value.to_owned(),
            count,
            first_seen: at(0),
            last_seen: at(100),
        }
    }

    fn used(session: &str, ua: &str, low: &str, high: &str) -> SessionUse {
        SessionUse {
            session_id: session.to_owned(),
            user_agent: ua.to_owned(),
            lowest_ip: Some(low.to_owned()),
            highest_ip: Some(high.to_owned()),
        }
    }

    /// 200 successful refreshes of one session, from one network and browser.
    fn quiet_user() -> ActivitySummary {
        ActivitySummary {
            by_outcome: BTreeMap::from([(RefreshOutcome::Success, 200)]),
            ips: vec![seen("198.51.100.1", 200)],
            user_agents: vec![seen(FIREFOX, 200)],
            distinct_ips: 1,
            distinct_user_agents: 1,
            sessions_seen: 1,
            session_uses: vec![used("s1", FIREFOX, "198.51.100.1", "198.51.100.1")],
            ..ActivitySummary::default()
        }
    }

    fn codes(a: &RiskAssessment) -> Vec<&'static str> {
        a.reasons.iter().map(RiskReason::code).collect()
    }

    #[test]
    fn a_quiet_user_stays_low() {
        let a = assess(&quiet_user(), &RiskThresholds::default());
        assert_eq!(a.level, RiskLevel::Low);
        assert_eq!(a.score, 0);
        assert!(a.reasons.is_empty());
    }

    #[test]
    fn no_activity_at_all_is_low() {
        let a = assess(&ActivitySummary::default(), &RiskThresholds::default());
        assert_eq!((a.level, a.score), (RiskLevel::Low, 0));
    }

    #[test]
    fn a_phone_moving_between_networks_stays_low() {
        let mut s = quiet_user();
        s.session_uses = vec![used("s1", FIREFOX, "198.51.100.1", "203.0.113.9")];
        s.distinct_ips = 3;
        let a = assess(&s, &RiskThresholds::default());
        assert_eq!(a.level, RiskLevel::Low, "{:?}", a.reasons);
    }

    #[test]
    fn a_browser_update_while_moving_networks_stays_low() {
        let mut s = quiet_user();
        s.session_uses = vec![
            used("s1", FIREFOX, "198.51.100.1", "198.51.100.1"),
            used("s1", FIREFOX_MINOR, "203.0.113.9", "203.0.113.9"),
        ];
        assert_eq!(assess(&s, &RiskThresholds::default()).level, RiskLevel::Low);
    }

    #[test]
    fn any_reuse_event_makes_it_high() {
        let s = ActivitySummary {
            reuse_events: 1,
            ..quiet_user()
        };
        let a = assess(&s, &RiskThresholds::default());
        assert_eq!(a.level, RiskLevel::High);
        assert_eq!(codes(&a), ["token_reuse"]);
        assert!(a.reasons[0].to_string().contains("1 token reuse event:"));
    }

    #[test]
    fn any_anomaly_event_makes_it_high() {
        let s = ActivitySummary {
            anomaly_events: 2,
            ..quiet_user()
        };
        let a = assess(&s, &RiskThresholds::default());
        assert_eq!(a.level, RiskLevel::High);
        assert_eq!(codes(&a), ["anomaly"]);
        assert!(a.reasons[0].to_string().starts_with("2 anomaly events"));
    }

    #[test]
    fn one_session_on_several_networks_and_devices_is_medium() {
        let mut s = quiet_user();
        s.session_uses = vec![
            used("s1", FIREFOX, "198.51.100.1", "198.51.100.1"),
            used("s1", CURL, "203.0.113.9", "203.0.113.9"),
        ];
        let a = assess(&s, &RiskThresholds::default());
        assert_eq!(a.level, RiskLevel::Medium);
        assert_eq!(codes(&a), ["shared_session"]);
        assert_eq!(s.shared_sessions(), 1);
    }

    #[test]
    fn different_devices_on_different_sessions_are_not_shared_sessions() {
        let mut s = quiet_user();
        s.session_uses = vec![
            used("laptop", FIREFOX, "198.51.100.1", "198.51.100.1"),
            used("script", CURL, "203.0.113.9", "203.0.113.9"),
        ];
        assert_eq!(s.shared_sessions(), 0);
        assert_eq!(assess(&s, &RiskThresholds::default()).level, RiskLevel::Low);
    }

    #[test]
    fn a_burst_of_failures_is_medium() {
        let mut s = quiet_user();
        s.by_outcome.insert(RefreshOutcome::Expired, 20);
        s.peak_failures_per_hour = 20;
        let a = assess(&s, &RiskThresholds::default());
        assert_eq!(a.level, RiskLevel::Medium);
        assert_eq!(codes(&a), ["failure_burst"]);
        s.peak_failures_per_hour = 19;
        assert_eq!(assess(&s, &RiskThresholds::default()).level, RiskLevel::Low);
    }

    #[test]
    fn mostly_failed_attempts_count_only_with_enough_attempts() {
        let few = ActivitySummary {
            by_outcome: BTreeMap::from([
                (RefreshOutcome::Success, 1),
                (RefreshOutcome::Expired, 2),
            ]),
            ..ActivitySummary::default()
        };
        assert!(assess(&few, &RiskThresholds::default()).reasons.is_empty());
        let many = ActivitySummary {
            by_outcome: BTreeMap::from([
                (RefreshOutcome::Success, 5),
                (RefreshOutcome::Expired, 5),
            ]),
            ..ActivitySummary::default()
        };
        let a = assess(&many, &RiskThresholds::default());
        assert_eq!(codes(&a), ["mostly_failures"]);
        assert_eq!(a.level, RiskLevel::Low, "20 points alone stay low");
        assert_eq!(a.reasons[0].to_string(), "5 of 10 refresh attempts failed");
    }

    #[test]
    fn attempts_on_ended_sessions_add_a_little() {
        let mut s = quiet_user();
        s.by_outcome.insert(RefreshOutcome::Revoked, 1);
        let a = assess(&s, &RiskThresholds::default());
        assert_eq!((a.level, a.score), (RiskLevel::Low, 10));
        assert_eq!(codes(&a), ["revoked_session_use"]);
    }

    #[test]
    fn many_networks_add_a_little() {
        let s = ActivitySummary {
            distinct_ips: 5,
            ..quiet_user()
        };
        let a = assess(&s, &RiskThresholds::default());
        assert_eq!((a.level, a.score), (RiskLevel::Low, 10));
        assert_eq!(codes(&a), ["many_networks"]);
    }

    #[test]
    fn rules_add_up_to_high_and_the_score_is_capped() {
        let mut s = quiet_user();
        s.session_uses = vec![
            used("s1", FIREFOX, "198.51.100.1", "198.51.100.1"),
            used("s1", CURL, "203.0.113.9", "203.0.113.9"),
        ];
        s.peak_failures_per_hour = 50;
        let a = assess(&s, &RiskThresholds::default());
        assert_eq!((a.level, a.score), (RiskLevel::High, 60));
        s.reuse_events = 3;
        s.anomaly_events = 1;
        s.distinct_ips = 9;
        let a = assess(&s, &RiskThresholds::default());
        assert_eq!((a.level, a.score), (RiskLevel::High, 100));
    }

    #[test]
    fn totals_split_into_succeeded_and_failed() {
        let s = ActivitySummary {
            by_outcome: BTreeMap::from([
                (RefreshOutcome::Success, 4),
                (RefreshOutcome::GraceReplay, 1),
                (RefreshOutcome::Reused, 2),
                (RefreshOutcome::UnknownToken, 3),
            ]),
            ..ActivitySummary::default()
        };
        assert_eq!((s.total(), s.succeeded(), s.failed()), (10, 5, 5));
    }
}
