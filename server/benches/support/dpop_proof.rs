//! DPoP proofs (RFC 9449) for the benchmarks, signed as the web client signs
//! them (ES256, one P-256 key) or with an Ed25519 key (EdDSA). Shared by
//! `refresh.rs` and `load.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use serde_json::{json, Value};

enum Key {
    Es256(p256::ecdsa::SigningKey),
    EdDsa(ed25519_dalek::SigningKey),
}

/// A proof key with its encoded proof header.
pub struct ProofKey {
    key: Key,
    header: String,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the epoch, as `iat` wants them.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl ProofKey {
    /// A fresh P-256 key (ES256), as the web client's.
    pub fn new() -> Self {
        let key = loop {
            // Almost every 32-byte string is a valid scalar.
            if let Ok(key) = p256::ecdsa::SigningKey::from_slice(&rand::random::<[u8; 32]>()) {
                break key;
            }
        };
        let point = key.verifying_key().to_sec1_point(false);
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": b64(point.x().expect("x")),
            "y": b64(point.y().expect("y")),
        });
        Self::with(Key::Es256(key), "ES256", jwk)
    }

    /// A fresh Ed25519 key (EdDSA).
    #[allow(dead_code, reason = "used by refresh.rs only")]
    pub fn eddsa() -> Self {
        let key = ed25519_dalek::SigningKey::from_bytes(&rand::random());
        let jwk = json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64(key.verifying_key().as_bytes()),
        });
        Self::with(Key::EdDsa(key), "EdDSA", jwk)
    }

    fn with(key: Key, alg: &str, jwk: Value) -> Self {
        let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": jwk});
        Self {
            key,
            header: b64(header.to_string().as_bytes()),
        }
    }

    /// A fresh proof (new `jti`, `iat` now) for `method` on `url`.
    pub fn proof(&self, method: &str, url: &str) -> String {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let jti = format!(
            "{}-{}",
            b64(&rand::random::<[u8; 12]>()),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let claims = json!({"htm": method, "htu": url, "iat": unix_now(), "jti": jti});
        let input = format!("{}.{}", self.header, b64(claims.to_string().as_bytes()));
        let signature = match &self.key {
            Key::Es256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
                signature.to_bytes().to_vec()
            }
            Key::EdDsa(key) => key.sign(input.as_bytes()).to_bytes().to_vec(),
        };
        format!("{input}.{}", b64(&signature))
    }
}
