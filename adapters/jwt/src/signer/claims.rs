//! The claims as they travel in the token.

use std::str::FromStr;

use application::ports::{AccessClaims, VerifyError};
use domain::{Jkt, Role, Roles, SessionId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

use super::JwtConfig;

/// A `jti` longer than this is not one of ours.
const MAX_JTI_LEN: usize = 128;

#[derive(Serialize)]
pub(super) struct OutgoingClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: String,
    sid: String,
    roles: Vec<String>,
    iat: i64,
    exp: i64,
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation<'a>>,
}

/// `cnf` (RFC 7800), with the DPoP key thumbprint (RFC 9449 §6.1).
#[derive(Serialize)]
struct Confirmation<'a> {
    jkt: &'a str,
}

#[derive(Deserialize, Clone)]
struct IncomingConfirmation {
    jkt: String,
}

impl<'a> OutgoingClaims<'a> {
    pub(super) fn new(claims: &'a AccessClaims, config: &'a JwtConfig) -> Self {
        Self {
            iss: &config.issuer,
            aud: &config.audience,
            sub: claims.user_id.to_string(),
            sid: claims.session_id.to_string(),
            roles: claims.roles.names(),
            iat: claims.issued_at.as_secs(),
            exp: claims.expires_at.as_secs(),
            jti: &claims.token_id,
            cnf: claims
                .confirmation
                .as_ref()
                .map(|jkt| Confirmation { jkt: jkt.as_str() }),
        }
    }
}

/// Every claim we rely on is a required field: a token without `sid`,
/// `roles`, `iat` or `jti` fails to deserialise and is invalid. `aud` is
/// checked by the library (a string or an array containing ours).
#[derive(Deserialize, Clone)]
pub(super) struct IncomingClaims {
    iss: String,
    sub: String,
    sid: String,
    roles: Vec<String>,
    iat: i64,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    jti: String,
    #[serde(default)]
    cnf: Option<IncomingConfirmation>,
}

impl IncomingClaims {
    /// Whether `exp` is after `now_secs` (leeway aside).
    pub(super) fn expires_after(&self, now_secs: i64) -> bool {
        self.exp > now_secs
    }

    /// Checks time against `now` and turns the claims into domain types.
    pub(super) fn into_access_claims(
        self,
        config: &JwtConfig,
        now: Timestamp,
    ) -> Result<AccessClaims, VerifyError> {
        // Belt and braces: the library accepts an array `iss`; we issue a string.
        if self.iss != config.issuer {
            return Err(VerifyError::Invalid);
        }
        // In milliseconds and i128, so that a sub-second leeway counts and
        // no claim value can overflow.
        let now_ms = i128::from(now.as_millis());
        let leeway_ms = i128::try_from(config.leeway.as_millis()).unwrap_or(i128::MAX / 4);
        if let Some(nbf) = self.nbf {
            if i128::from(nbf) * 1000 > now_ms + leeway_ms {
                return Err(VerifyError::Invalid);
            }
        }
        // RFC 7519 §4.1.4: valid only *before* `exp`.
        if now_ms >= i128::from(self.exp) * 1000 + leeway_ms {
            return Err(VerifyError::Expired);
        }
        if self.jti.is_empty() || self.jti.len() > MAX_JTI_LEN {
            return Err(VerifyError::Invalid);
        }
        let roles = self
            .roles
            .iter()
            .map(|r| Role::parse(r))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| VerifyError::Invalid)?;
        Ok(AccessClaims {
            user_id: UserId::from_str(&self.sub).map_err(|_| VerifyError::Invalid)?,
            session_id: SessionId::from_str(&self.sid).map_err(|_| VerifyError::Invalid)?,
            roles: Roles::new(roles),
            issued_at: Timestamp::from_millis(self.iat.saturating_mul(1000)),
            expires_at: Timestamp::from_millis(self.exp.saturating_mul(1000)),
            token_id: self.jti,
            confirmation: self
                .cnf
                .map(|c| Jkt::parse(&c.jkt))
                .transpose()
                .map_err(|_| VerifyError::Invalid)?,
        })
    }
}
