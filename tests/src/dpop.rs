//! A small DPoP client (RFC 9449), as a native client would write it: one
//! key pair per installation, a fresh proof for every request.
//!
//! A real client keeps the private key where it cannot be copied out: the
//! Android Keystore or iOS Secure Enclave (both sign ES256 with a
//! non-exportable P-256 key), a TPM, or WebCrypto with `extractable: false`
//! in a browser. Here the key lives in memory, which is fine for tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A proof key: ES256 (P-256) or EdDSA (Ed25519).
#[derive(Clone)]
pub enum DpopKey {
    Es256(p256::ecdsa::SigningKey),
    EdDsa(ed25519_dalek::SigningKey),
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the epoch, as `iat` wants them.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl DpopKey {
    /// A fresh P-256 key.
    pub fn es256() -> Self {
        loop {
            // Almost every 32-byte string is a valid scalar.
            if let Ok(key) = p256::ecdsa::SigningKey::from_slice(&rand::random::<[u8; 32]>()) {
                return Self::Es256(key);
            }
        }
    }

    /// A P-256 key from a seed, for deterministic runs.
    pub fn es256_from_seed(seed: u64) -> Self {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_be_bytes());
        bytes[31] = 1;
        Self::Es256(p256::ecdsa::SigningKey::from_slice(&bytes).expect("a valid scalar"))
    }

    /// A fresh Ed25519 key.
    pub fn eddsa() -> Self {
        Self::EdDsa(ed25519_dalek::SigningKey::from_bytes(&rand::random()))
    }

    pub fn alg(&self) -> &'static str {
        match self {
            Self::Es256(_) => "ES256",
            Self::EdDsa(_) => "EdDSA",
        }
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> Value {
        match self {
            Self::Es256(key) => {
                let point = key.verifying_key().to_sec1_point(false);
                let (x, y) = (point.x().expect("x"), point.y().expect("y"));
                json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)})
            }
            Self::EdDsa(key) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(key.verifying_key().as_bytes())})
            }
        }
    }

    /// The RFC 7638 thumbprint the server binds sessions to (`cnf.jkt`).
    pub fn thumbprint(&self) -> String {
        let jwk = self.public_jwk();
        let canonical = match self {
            Self::Es256(_) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                jwk["x"].as_str().unwrap_or(""),
                jwk["y"].as_str().unwrap_or("")
            ),
            Self::EdDsa(_) => format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                jwk["x"].as_str().unwrap_or("")
            ),
        };
        b64(&Sha256::digest(canonical.as_bytes()))
    }

    /// The standard header of this key's proofs.
    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": self.public_jwk()})
    }

    /// The claims of a proof for `method` on `url` now, with `ath` when an
    /// access token goes along.
    pub fn claims(&self, method: &str, url: &str, access_token: Option<&str>) -> Value {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let jti = format!(
            "{}-{}",
            b64(&rand::random::<[u8; 12]>()),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut claims = json!({"htm": method, "htu": url, "iat": unix_now(), "jti": jti});
        if let Some(token) = access_token {
            claims["ath"] = json!(b64(&Sha256::digest(token.as_bytes())));
        }
        claims
    }

    /// A proof for `method` on `url` (absolute, without query).
    pub fn proof(&self, method: &str, url: &str, access_token: Option<&str>) -> String {
        self.sign(&self.header(), &self.claims(method, url, access_token))
    }

    /// Signs any header and claims: for tests of what the server refuses.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = match self {
            Self::Es256(key) => {
                let s: p256::ecdsa::Signature = key.sign(input.as_bytes());
                s.to_bytes().to_vec()
            }
            Self::EdDsa(key) => key.sign(input.as_bytes()).to_bytes().to_vec(),
        };
        format!("{input}.{}", b64(&signature))
    }
}
