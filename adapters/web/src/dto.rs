//! Request and response bodies, and their conversion into domain types.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::ToSchema;

use application::{IssuedTokens, SessionView};
use domain::{Timestamp, User};

/// Self-registration always gets the role `user`; other roles are granted
/// with `tokenwarden user create --role`. Unknown fields are ignored.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    #[schema(
        min_length = 3,
        max_length = 64,
        pattern = r"^[A-Za-z0-9_.-]{3,64}$",
        example = "alice"
    )]
    pub username: String,
    /// 8 to 256 Unicode scalar values, any characters.
    #[schema(
        min_length = 8,
        max_length = 256,
        example = "correct horse battery staple"
    )]
    pub password: String,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenDelivery {
    #[default]
    Cookie,
    Body,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Any string: a username that cannot exist answers `invalid_credentials`
    /// like a wrong password (nothing tells which usernames exist).
    #[schema(example = "alice")]
    pub username: String,
    #[schema(example = "correct horse battery staple")]
    pub password: String,
    /// A label for the session list: at most 100 characters, no control,
    /// bidirectional or line/paragraph separator characters.
    #[serde(default)]
    #[schema(
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069\u2028\u2029]*$",
        example = "Firefox on Alice's laptop"
    )]
    pub device_name: Option<String>,
    #[serde(default)]
    pub token_delivery: TokenDelivery,
}

/// Body of `/auth/refresh` and `/auth/logout`: the token, for native clients.
#[derive(Debug, Deserialize, Default, ToSchema)]
pub struct RefreshRequest {
    #[serde(default)]
    pub refresh_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserBody {
    pub id: String,
    pub username: String,
    pub roles: Vec<String>,
}

impl From<&User> for UserBody {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.to_string(),
            username: u.username.to_string(),
            roles: u.roles.names(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// `DPoP` for a session bound to a DPoP key (send the access token as
    /// `Authorization: DPoP <token>` with a proof), `Bearer` otherwise.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    pub expires_in: u64,
    pub session_id: String,
    pub refresh_expires_in: u64,
    pub user: UserBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl TokenResponse {
    pub fn new(issued: &IssuedTokens, delivery: TokenDelivery) -> Self {
        Self {
            access_token: issued.access_token.clone(),
            token_type: if issued.dpop_bound { "DPoP" } else { "Bearer" },
            expires_in: issued.access_expires_in.as_secs(),
            session_id: issued.session_id.to_string(),
            refresh_expires_in: issued.refresh_expires_in.as_secs(),
            user: UserBody::from(&issued.user),
            refresh_token: (delivery == TokenDelivery::Body)
                .then(|| issued.refresh_token.expose().to_owned()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionBody {
    pub id: String,
    pub device_name: Option<String>,
    pub created_at: String,
    pub last_used_at: String,
    pub last_ip: Option<String>,
    pub last_user_agent: Option<String>,
    pub expires_at: String,
    pub current: bool,
}

impl From<&SessionView> for SessionBody {
    fn from(v: &SessionView) -> Self {
        let s = &v.session;
        Self {
            id: s.id.to_string(),
            device_name: s.device_name.clone(),
            created_at: rfc3339(s.created_at),
            last_used_at: rfc3339(s.last_used_at),
            last_ip: s.last_ip.clone(),
            last_user_agent: s.last_user_agent.clone(),
            expires_at: rfc3339(v.expires_at),
            current: v.current,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeBody {
    pub id: String,
    pub username: String,
    pub roles: Vec<String>,
    pub session_id: String,
}

/// RFC 3339 in UTC with exactly three fractional digits, so that instants
/// sort as text too (`2024-05-01T12:00:00.100Z`, not `…00.1Z`).
pub fn rfc3339(t: Timestamp) -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.as_millis()) * 1_000_000)
        .ok()
        .and_then(|dt| dt.format(FORMAT).or_else(|_| dt.format(&Rfc3339)).ok())
        .unwrap_or_default()
}
