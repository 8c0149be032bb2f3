//! Signing per Standard Webhooks: `webhook-signature: v1,<base64 of
//! HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")>`.
//!
//! The key is the secret's bytes as given, unless the secret starts with
//! `whsec_` (the form Standard Webhooks libraries generate and expect):
//! then it is the base64 decoding of the rest. Either way a receiver
//! verifies with the very string it was given, in its library of choice.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

/// The prefix of base64-encoded secrets.
pub const WHSEC_PREFIX: &str = "whsec_";

/// The shortest secret accepted, in bytes of the setting's value.
pub const MIN_SECRET_BYTES: usize = 32;

/// How far a signed timestamp may be from the verifier's clock
/// (Standard Webhooks' recommendation).
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// The key deliveries are signed with. Redacted in `Debug`.
#[derive(Clone)]
pub struct WebhookSecret(SecretSlice<u8>);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// Why a secret cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("must be at least {MIN_SECRET_BYTES} bytes long")]
    TooShort,
    #[error("a secret starting with {WHSEC_PREFIX} must continue with base64")]
    NotBase64,
}

impl WebhookSecret {
    /// The secret of the setting's value `text`: at least
    /// [`MIN_SECRET_BYTES`] bytes; `whsec_<base64>` stands for the decoded
    /// bytes, anything else for its own bytes.
    ///
    /// # Errors
    /// [`SecretError`] for a short secret or a `whsec_` one that is not
    /// base64.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        if text.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort);
        }
        let key = match text.strip_prefix(WHSEC_PREFIX) {
            Some(encoded) => STANDARD
                .decode(encoded)
                .or_else(|_| STANDARD_NO_PAD.decode(encoded))
                .ok()
                .filter(|key| !key.is_empty())
                .ok_or(SecretError::NotBase64)?,
            None => text.as_bytes().to_vec(),
        };
        Ok(Self(key.into()))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Option<Hmac<Sha256>> {
        // HMAC takes keys of any length: this never fails.
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret()).ok()?;
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        Some(mac)
    }

    /// The `webhook-signature` value of a message: `v1,<base64>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let digest = self
            .mac(id, timestamp, body)
            .map(|mac| mac.finalize().into_bytes().to_vec())
            .unwrap_or_default();
        format!("v1,{}", STANDARD.encode(digest))
    }

    /// Checks a received message as a receiver should: one of the
    /// space-separated `v1,` signatures of `signatures` matches (compared
    /// in constant time), and `timestamp` is within [`TOLERANCE_SECS`] of
    /// `now` (seconds since the epoch), so that a captured message cannot
    /// be replayed later.
    ///
    /// # Errors
    /// [`VerifyError`] saying which check failed.
    pub fn verify(
        &self,
        id: &str,
        timestamp: &str,
        body: &[u8],
        signatures: &str,
        now: i64,
    ) -> Result<(), VerifyError> {
        let timestamp: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| VerifyError::BadTimestamp)?;
        if (now - timestamp).abs() > TOLERANCE_SECS {
            return Err(VerifyError::Stale);
        }
        let matches = signatures
            .split_whitespace()
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|s| STANDARD.decode(s).ok())
            .any(|candidate| {
                self.mac(id, timestamp, body)
                    .is_some_and(|mac| mac.verify_slice(&candidate).is_ok())
            });
        if matches {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

/// Why a received message does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("webhook-timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is too far from now")]
    Stale,
    #[error("no webhook-signature matches")]
    Mismatch,
}

#[cfg(test)]
mod tests {
    use super::*;

    // The published test vector of the Standard Webhooks specification.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        assert_eq!(secret.sign(ID, TIMESTAMP, BODY), SIGNATURE);
    }

    #[test]
    fn a_secret_without_the_prefix_is_its_own_bytes() {
        let raw = "x".repeat(40);
        let raw_secret = WebhookSecret::parse(&raw).unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(raw.as_bytes()).unwrap();
        mac.update(format!("{ID}.{TIMESTAMP}.").as_bytes());
        mac.update(BODY);
        let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        assert_eq!(raw_secret.sign(ID, TIMESTAMP, BODY), expected);
        // `whsec_` is only a prefix with base64 after it: the vector's key
        // given raw signs differently.
        let as_text = WebhookSecret::parse(&SECRET[WHSEC_PREFIX.len()..].repeat(2)).unwrap();
        assert_ne!(as_text.sign(ID, TIMESTAMP, BODY), SIGNATURE);
    }

    #[test]
    fn verification_accepts_the_vector_and_refuses_tampering_and_old_messages() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        let ts = TIMESTAMP.to_string();
        assert_eq!(
            secret.verify(ID, &ts, BODY, SIGNATURE, TIMESTAMP + 10),
            Ok(())
        );
        // One of several signatures (a receiver rotating secrets).
        let several = format!("v1,AAAA {SIGNATURE}");
        assert_eq!(secret.verify(ID, &ts, BODY, &several, TIMESTAMP), Ok(()));
        assert_eq!(
            secret.verify(ID, &ts, br#"{"test": 1}"#, SIGNATURE, TIMESTAMP),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            secret.verify("msg_other", &ts, BODY, SIGNATURE, TIMESTAMP),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            secret.verify(ID, &ts, BODY, SIGNATURE, TIMESTAMP + TOLERANCE_SECS + 1),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            secret.verify(ID, "soon", BODY, SIGNATURE, TIMESTAMP),
            Err(VerifyError::BadTimestamp)
        );
    }

    #[test]
    fn short_secrets_and_bad_base64_are_refused_and_debug_is_redacted() {
        assert_eq!(
            WebhookSecret::parse(&"x".repeat(31)).unwrap_err(),
            SecretError::TooShort
        );
        assert_eq!(
            WebhookSecret::parse("whsec_this is not base64 at all!!!!!").unwrap_err(),
            SecretError::NotBase64
        );
        let secret = WebhookSecret::parse(&"s3cr3t".repeat(6)).unwrap();
        assert!(!format!("{secret:?}").contains("s3cr3t"));
    }
}
