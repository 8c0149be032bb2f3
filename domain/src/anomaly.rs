//! The anomaly rule: a refresh that does not look like the client that last
//! used the session.
//!
//! A session last used from a different IP *and* a different user-agent
//! family ([`crate::user_agent`]) less than the anomaly window ago is
//! treated like theft. Either change alone is normal life: a phone moves
//! between networks, a browser updates itself. See `docs/risk-scoring.md`.

use std::time::Duration;

use crate::time::Timestamp;
use crate::user_agent::different_families;

/// What an anomaly leads to (`TOKENWARDEN_ANOMALY_RESPONSE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnomalyResponse {
    /// Refuse the refresh and revoke like a reuse does (the scope follows
    /// [`crate::ReuseResponse`]); the client sees `401 token_reused`.
    #[default]
    Revoke,
    /// Record the security event and let the refresh succeed.
    LogOnly,
}

/// The configured rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnomalyPolicy {
    /// How long after a session's last use a change of both network and
    /// device counts. Zero disables the rule.
    pub window: Duration,
    pub response: AnomalyResponse,
}

impl Default for AnomalyPolicy {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10 * 60),
            response: AnomalyResponse::Revoke,
        }
    }
}

/// Where and with what a session was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting<'a> {
    pub at: Timestamp,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

impl AnomalyPolicy {
    /// Whether `current` is an anomaly after the session's `last` use: both
    /// the IP and the user-agent family changed, less than the window after
    /// the last use. An unknown IP on either side is not a change (nothing
    /// proves one); a missing user agent is a family of its own.
    pub fn is_anomalous(&self, last: &Sighting<'_>, current: &Sighting<'_>) -> bool {
        if self.window.is_zero() || current.at >= last.at.plus(self.window) {
            return false;
        }
        let ip_changed = matches!((last.ip, current.ip), (Some(a), Some(b)) if a != b);
        ip_changed && different_families(last.user_agent, current.user_agent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0";
    const FIREFOX_MINOR: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.1";
    const CURL: &str = "curl/8.5.0";

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_millis(secs * 1_000)
    }

    fn seen(secs: i64, ip: &'static str, ua: &'static str) -> Sighting<'static> {
        Sighting {
            at: at(secs),
            ip: Some(ip),
            user_agent: Some(ua),
        }
    }

    fn policy() -> AnomalyPolicy {
        AnomalyPolicy::default()
    }

    #[test]
    fn another_network_and_device_inside_the_window_is_an_anomaly() {
        let last = seen(0, "198.51.100.1", FIREFOX);
        assert!(policy().is_anomalous(&last, &seen(599, "203.0.113.9", CURL)));
    }

    #[test]
    fn an_ip_change_alone_is_not_an_anomaly() {
        let last = seen(0, "198.51.100.1", FIREFOX);
        assert!(!policy().is_anomalous(&last, &seen(1, "203.0.113.9", FIREFOX)));
    }

    #[test]
    fn a_device_change_alone_is_not_an_anomaly() {
        let last = seen(0, "198.51.100.1", FIREFOX);
        assert!(!policy().is_anomalous(&last, &seen(1, "198.51.100.1", CURL)));
    }

    #[test]
    fn a_browser_update_while_moving_networks_is_not_an_anomaly() {
        let last = seen(0, "198.51.100.1", FIREFOX);
        assert!(!policy().is_anomalous(&last, &seen(1, "203.0.113.9", FIREFOX_MINOR)));
    }

    #[test]
    fn changes_after_the_window_are_not_an_anomaly() {
        let last = seen(0, "198.51.100.1", FIREFOX);
        assert!(!policy().is_anomalous(&last, &seen(600, "203.0.113.9", CURL)));
    }

    #[test]
    fn a_zero_window_disables_the_rule() {
        let p = AnomalyPolicy {
            window: Duration::ZERO,
            ..policy()
        };
        let last = seen(0, "198.51.100.1", FIREFOX);
        assert!(!p.is_anomalous(&last, &seen(0, "203.0.113.9", CURL)));
    }

    #[test]
    fn an_unknown_ip_is_no_evidence_of_a_change() {
        let last = Sighting {
            ip: None,
            ..seen(0, "198.51.100.1", FIREFOX)
        };
        assert!(!policy().is_anomalous(&last, &seen(1, "203.0.113.9", CURL)));
    }

    #[test]
    fn dropping_the_user_agent_counts_as_another_device() {
        let last = seen(0, "198.51.100.1", FIREFOX);
        let current = Sighting {
            user_agent: None,
            ..seen(1, "203.0.113.9", CURL)
        };
        assert!(policy().is_anomalous(&last, &current));
    }
}
