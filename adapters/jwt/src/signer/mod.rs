//! Access tokens: RFC 9068 JWTs signed with EdDSA.

mod claims;
mod verified;

use std::fmt;
use std::time::Duration;

use application::ports::{AccessClaims, AccessTokenSigner, CryptoError, VerifyError};
use domain::Timestamp;
use jsonwebtoken::{Algorithm, Header, Validation};

use crate::keystore::{system_now, KeyStore};
use claims::{IncomingClaims, OutgoingClaims};
use verified::{Verified, VerifiedTokens};

/// The `typ` header of our access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// Longer input is refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// What tokens are issued for and how much clock skew verification forgives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    pub issuer: String,
    pub audience: String,
    /// Applied to `exp` and `nbf` (`TOKENWARDEN_CLOCK_LEEWAY`).
    pub leeway: Duration,
}

/// Signs with the store's current key; verifies against its published keys.
pub struct JwtSigner {
    store: KeyStore,
    config: JwtConfig,
    validation: Validation,
    verified: VerifiedTokens,
}

impl JwtSigner {
    /// Accepts a `KeyStore`, `&KeyStore` or `Arc<KeyStore>`; all share the
    /// same keys.
    pub fn new(store: impl Into<KeyStore>, config: JwtConfig) -> Self {
        let store = store.into();
        store.note_leeway(config.leeway);
        let validation = validation_for(&config);
        Self {
            store,
            config,
            validation,
            verified: VerifiedTokens::default(),
        }
    }

    pub fn store(&self) -> &KeyStore {
        &self.store
    }

    pub fn config(&self) -> &JwtConfig {
        &self.config
    }

    /// The RFC 7517 key set to serve at `/.well-known/jwks.json`, as of the
    /// wall clock.
    pub fn jwks(&self) -> serde_json::Value {
        self.jwks_at(system_now())
    }

    /// The key set as of `now`: the current key and every retired key that
    /// tokens valid at `now` may have been signed with.
    pub fn jwks_at(&self, now: Timestamp) -> serde_json::Value {
        self.store.reload_if_stale();
        self.store.jwks_at(now, self.config.leeway)
    }

    fn check(&self, token: &str, now: Timestamp) -> Result<AccessClaims, VerifyError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(VerifyError::Invalid);
        }
        if let Some(hit) = self.verified.get(token) {
            self.store.reload_if_stale();
            let published = self
                .store
                .snapshot()
                .find_published(&hit.kid, now, self.config.leeway)
                .is_some();
            if published {
                return hit.claims.into_access_claims(&self.config, now);
            }
        }
        // The header is read unverified only to pick the key: nothing in it
        // is trusted beyond that, and the algorithm is pinned.
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Invalid)?;
        if header.alg != Algorithm::EdDSA || !is_access_token_typ(header.typ.as_deref()) {
            return Err(VerifyError::Invalid);
        }
        // We understand no critical extension (RFC 7515 §4.1.11).
        if header.crit.is_some() {
            return Err(VerifyError::Invalid);
        }
        let kid = header.kid.ok_or(VerifyError::Invalid)?;

        self.store.reload_if_stale();
        let leeway = self.config.leeway;
        let key = match self.store.snapshot().find_published(&kid, now, leeway) {
            Some(key) => key,
            None => {
                self.store.reload_after_unknown_kid();
                self.store
                    .snapshot()
                    .find_published(&kid, now, leeway)
                    .ok_or(VerifyError::Invalid)?
            }
        };

        let data = jsonwebtoken::decode::<IncomingClaims>(token, &key.decoding, &self.validation)
            .map_err(|_| VerifyError::Invalid)?;
        let verified = Verified {
            kid: kid.into(),
            claims: data.claims.clone(),
        };
        let claims = data.claims.into_access_claims(&self.config, now)?;
        self.verified.insert(token, verified, now.as_secs());
        Ok(claims)
    }
}

impl AccessTokenSigner for JwtSigner {
    fn sign(&self, claims: &AccessClaims) -> Result<String, CryptoError> {
        self.store.reload_if_stale();
        let snapshot = self.store.snapshot();
        let key = snapshot
            .current()
            .ok_or_else(|| CryptoError("no current signing key is loaded".to_owned()))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        header.kid = Some(key.kid.clone());
        let wire = OutgoingClaims::new(claims, &self.config);
        compact_jws(&header, &wire, &key.signing)
    }

    fn verify(&self, token: &str, now: Timestamp) -> Result<AccessClaims, VerifyError> {
        self.check(token, now)
    }
}

impl fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSigner")
            .field("store", &self.store)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The JWS compact serialization `jsonwebtoken::encode` produces
/// (base64url of the header's and the claims' JSON, then of the Ed25519
/// signature of both), signed with a key decoded once at load.
fn compact_jws(
    header: &Header,
    claims: &OutgoingClaims<'_>,
    key: &ed25519_dalek::SigningKey,
) -> Result<String, CryptoError> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;

    let json = |what: &str, value: Result<Vec<u8>, serde_json::Error>| {
        value.map_err(|e| CryptoError(format!("encoding the access token's {what} failed: {e}")))
    };
    let header = json("header", serde_json::to_vec(header))?;
    let claims = json("claims", serde_json::to_vec(claims))?;
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut token);
    let signature = key.sign(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
    Ok(token)
}

/// `at+jwt`, or its full media type; compared case-insensitively as media
/// types are (RFC 7515 §4.1.9).
fn is_access_token_typ(typ: Option<&str>) -> bool {
    typ.is_some_and(|t| {
        t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || t.eq_ignore_ascii_case("application/at+jwt")
    })
}

/// The library checks signature, algorithm, presence of the spec claims,
/// `iss` and `aud`. Time is ours: `exp` and `nbf` are checked against the
/// caller's `now`, not the library's clock (see `IncomingClaims`).
fn validation_for(config: &JwtConfig) -> Validation {
    let mut v = Validation::new(Algorithm::EdDSA);
    v.algorithms = vec![Algorithm::EdDSA];
    v.leeway = config.leeway.as_secs();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = true;
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.set_issuer(&[config.issuer.as_str()]);
    v.set_audience(&[config.audience.as_str()]);
    v
}

#[cfg(test)]
mod tests;
