//! Response bodies of the admin API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use application::{Page, TokenAnalysis, UserDetail};
use domain::{AuditRecord, RefreshOutcome, SecurityEvent, Seen, User};

use crate::dto::rfc3339;

/// Query of `GET /admin/users/{id}/token-analysis`. Values arrive as text
/// and are validated by the handler, so that a bad one is a 422 naming it.
#[derive(Debug, Deserialize, Default)]
pub struct AnalysisQuery {
    pub days: Option<String>,
}

/// Query of the paginated lists.
#[derive(Debug, Deserialize, Default)]
pub struct PageQuery {
    pub limit: Option<String>,
    pub before: Option<String>,
    pub user_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PageBody<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> PageBody<T> {
    pub fn from_page<S>(page: &Page<S>, item: impl Fn(&S) -> T) -> Self {
        Self {
            items: page.items.iter().map(item).collect(),
            next: page.next.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptsBody {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Every outcome, zero or not.
    pub by_outcome: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeenIpBody {
    pub ip: String,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeenUserAgentBody {
    pub user_agent: String,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RiskBody {
    pub level: &'static str,
    pub score: u32,
    pub reasons: Vec<String>,
    /// Machine names of the rules that fired, in the order of `reasons`.
    pub reason_codes: Vec<&'static str>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnalysisBody {
    pub user_id: String,
    pub username: String,
    pub days: u32,
    pub from: String,
    pub to: String,
    pub attempts: AttemptsBody,
    /// The most frequent (at most 100), most attempts first.
    pub distinct_ips: Vec<SeenIpBody>,
    pub distinct_user_agents: Vec<SeenUserAgentBody>,
    /// How many there are in all (the lists above are capped).
    pub distinct_ip_count: u64,
    pub distinct_user_agent_count: u64,
    pub sessions_seen: u64,
    pub reuse_events: u64,
    pub anomaly_events: u64,
    /// `reuse_after_end` events: a rotated token of a session ended (other
    /// than by a theft response) after that rotation (makes the risk `high`).
    pub reuse_after_end_events: u64,
    /// `dpop_mismatch` events: a bound session's token without a proof by
    /// its key (refused, nothing spent).
    pub dpop_mismatch_events: u64,
    /// The user's live sessions now, and whether each is DPoP-bound.
    pub sessions: Vec<AnalysedSessionBody>,
    pub risk: RiskBody,
}

/// A live session as the analysis shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalysedSessionBody {
    #[schema(format = Uuid)]
    pub id: String,
    /// Bound to a DPoP key at login: every refresh needs a proof by it.
    pub dpop_bound: bool,
    pub device_name: Option<String>,
    pub created_at: String,
    pub last_used_at: String,
    pub last_ip: Option<String>,
}

fn seen<T>(list: &[Seen], make: impl Fn(String, u64, String, String) -> T) -> Vec<T> {
    list.iter()
        .map(|s| {
            make(
                s.value.clone(),
                s.count,
                rfc3339(s.first_seen),
                rfc3339(s.last_seen),
            )
        })
        .collect()
}

impl From<&TokenAnalysis> for AnalysisBody {
    fn from(a: &TokenAnalysis) -> Self {
        let activity = &a.activity;
        Self {
            user_id: a.user.id.to_string(),
            username: a.user.username.to_string(),
            days: a.days.get(),
            from: rfc3339(a.from),
            to: rfc3339(a.to),
            attempts: AttemptsBody {
                total: activity.total(),
                succeeded: activity.succeeded(),
                failed: activity.failed(),
                by_outcome: RefreshOutcome::ALL
                    .into_iter()
                    .map(|o| (o.as_str(), activity.count(o)))
                    .collect(),
            },
            distinct_ips: seen(&activity.ips, |ip, count, first_seen, last_seen| {
                SeenIpBody {
                    ip,
                    count,
                    first_seen,
                    last_seen,
                }
            }),
            distinct_user_agents: seen(
                &activity.user_agents,
                |user_agent, count, first_seen, last_seen| SeenUserAgentBody {
                    user_agent,
                    count,
                    first_seen,
                    last_seen,
                },
            ),
            distinct_ip_count: activity.distinct_ips,
            distinct_user_agent_count: activity.distinct_user_agents,
            sessions_seen: activity.sessions_seen,
            reuse_events: activity.reuse_events,
            anomaly_events: activity.anomaly_events,
            reuse_after_end_events: activity.reuse_after_end_events,
            dpop_mismatch_events: activity.dpop_mismatch_events,
            sessions: a
                .sessions
                .iter()
                .map(|s| AnalysedSessionBody {
                    id: s.id.to_string(),
                    dpop_bound: s.dpop_jkt.is_some(),
                    device_name: s.device_name.clone(),
                    created_at: rfc3339(s.created_at),
                    last_used_at: rfc3339(s.last_used_at),
                    last_ip: s.last_ip.clone(),
                })
                .collect(),
            risk: RiskBody {
                level: a.risk.level.as_str(),
                score: a.risk.score,
                reasons: a.risk.reasons.iter().map(ToString::to_string).collect(),
                reason_codes: a.risk.reasons.iter().map(|r| r.code()).collect(),
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshLogBody {
    pub at: String,
    pub outcome: &'static str,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub token_fingerprint: Option<String>,
    /// How many requests the entry stands for: 1, except for refreshes
    /// refused by the per-IP failure limit (`rate_limited`), counted in one
    /// entry per client IP and minute.
    pub count: u64,
}

impl From<&AuditRecord> for RefreshLogBody {
    fn from(r: &AuditRecord) -> Self {
        let a = &r.attempt;
        Self {
            at: rfc3339(a.at),
            outcome: a.outcome.as_str(),
            user_id: a.user_id.map(|u| u.to_string()),
            session_id: a.session_id.map(|s| s.to_string()),
            ip: a.ip.clone(),
            user_agent: a.user_agent.clone(),
            token_fingerprint: a.fingerprint.as_ref().map(|f| f.as_str().to_owned()),
            count: r.count,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityEventBody {
    pub id: String,
    pub user_id: String,
    pub session_id: Option<String>,
    #[schema(value_type = crate::openapi::SecurityEventKindName)]
    pub kind: &'static str,
    /// A JSON object.
    #[schema(value_type = Object)]
    pub details: Value,
    pub created_at: String,
}

impl From<&SecurityEvent> for SecurityEventBody {
    fn from(e: &SecurityEvent) -> Self {
        Self {
            id: e.id.to_string(),
            user_id: e.user_id.to_string(),
            session_id: e.session_id.map(|s| s.to_string()),
            kind: e.kind.as_str(),
            // Written by the storage adapter as JSON; should a stored value
            // ever not parse, it is shown as the text it is.
            details: serde_json::from_str(&e.details)
                .unwrap_or_else(|_| Value::String(e.details.clone())),
            created_at: rfc3339(e.created_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use domain::Timestamp;

    use super::rfc3339;

    #[test]
    fn instants_have_three_fraction_digits_and_sort_as_text() {
        let a = rfc3339(Timestamp::from_millis(1_700_000_000_100));
        let b = rfc3339(Timestamp::from_millis(1_700_000_000_114));
        assert_eq!(a, "2023-11-14T22:13:20.100Z");
        assert!(a < b);
        assert_eq!(
            rfc3339(Timestamp::from_millis(0)),
            "1970-01-01T00:00:00.000Z"
        );
    }
}

/// Body of `POST /auth/password`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordChangeRequest {
    /// The password in use now (a wrong one counts as a failed login).
    #[schema(example = "correct horse battery staple")]
    pub current_password: String,
    /// 8 to 256 characters (Unicode scalar values).
    #[schema(min_length = 8, max_length = 256, example = "a much better passphrase")]
    pub new_password: String,
}

/// Body of `POST /admin/users/{user_id}/password`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewPasswordRequest {
    /// 8 to 256 characters (Unicode scalar values).
    #[schema(min_length = 8, max_length = 256, example = "a much better passphrase")]
    pub new_password: String,
}

/// Body of `POST /admin/users`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateUserRequest {
    /// 3 to 64 characters of `[A-Za-z0-9_.-]`, unique case-insensitively.
    #[schema(
        min_length = 3,
        max_length = 64,
        pattern = r"^[A-Za-z0-9_.-]{3,64}$",
        example = "carol"
    )]
    pub username: String,
    /// 8 to 256 characters (Unicode scalar values).
    #[schema(
        min_length = 8,
        max_length = 256,
        example = "correct horse battery staple"
    )]
    pub password: String,
    /// Role names, each `[a-z][a-z0-9_-]{0,31}`; default `["user"]`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<RoleName>>)]
    pub roles: Option<Vec<String>>,
}

/// Body of `PATCH /admin/users/{user_id}`: at least one of the fields, no
/// other field (an unknown field is 422, not silently ignored: a typo must
/// not look like a change that was made).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct PatchUserRequest {
    /// The user's roles from now on (replaces them), each
    /// `[a-z][a-z0-9_-]{0,31}`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Vec<RoleName>, required = false)]
    pub roles: Option<Vec<String>>,
    /// `true` disables the account (every session revoked), `false`
    /// enables it again.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = bool, required = false)]
    pub disabled: Option<bool>,
}

/// A field that may be left out but, when sent, is not `null`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A role name.
#[derive(Debug, Serialize, ToSchema)]
#[schema(pattern = r"^[a-z][a-z0-9_-]{0,31}$", example = "auditor")]
pub struct RoleName(String);

/// Query of `GET /admin/users`, as text (validated by the handler).
#[derive(Debug, Deserialize, Default)]
pub struct UsersQuery {
    pub q: Option<String>,
    pub limit: Option<String>,
    pub before: Option<String>,
}

/// A user as admins see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserBody {
    pub id: String,
    pub username: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub created_at: String,
    /// The last successful login; `null` if none.
    pub last_login_at: Option<String>,
}

impl From<&User> for AdminUserBody {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.to_string(),
            username: u.username.to_string(),
            roles: u.roles.names(),
            disabled: u.disabled,
            created_at: rfc3339(u.created_at),
            last_login_at: u.last_login_at.map(rfc3339),
        }
    }
}

/// A live session of a user, as `GET /auth/sessions` shows it (without
/// `current`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminSessionBody {
    pub id: String,
    pub device_name: Option<String>,
    pub created_at: String,
    pub last_used_at: String,
    pub last_ip: Option<String>,
    pub last_user_agent: Option<String>,
    pub expires_at: String,
}

/// A user with their live sessions (`GET /admin/users/{user_id}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserDetailBody {
    pub id: String,
    pub username: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub created_at: String,
    pub last_login_at: Option<String>,
    /// Most recently used first.
    pub live_sessions: Vec<AdminSessionBody>,
}

impl From<&UserDetail> for AdminUserDetailBody {
    fn from(d: &UserDetail) -> Self {
        let user = AdminUserBody::from(&d.user);
        Self {
            id: user.id,
            username: user.username,
            roles: user.roles,
            disabled: user.disabled,
            created_at: user.created_at,
            last_login_at: user.last_login_at,
            live_sessions: d
                .sessions
                .iter()
                .map(|v| {
                    let s = &v.session;
                    AdminSessionBody {
                        id: s.id.to_string(),
                        device_name: s.device_name.clone(),
                        created_at: rfc3339(s.created_at),
                        last_used_at: rfc3339(s.last_used_at),
                        last_ip: s.last_ip.clone(),
                        last_user_agent: s.last_user_agent.clone(),
                        expires_at: rfc3339(v.expires_at),
                    }
                })
                .collect(),
        }
    }
}
