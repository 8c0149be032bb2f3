//! One Ed25519 signing key, as loaded from its PEM file.

use std::fmt;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use domain::Timestamp;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, KeypairBytes};
use ed25519_dalek::SigningKey;
use jsonwebtoken::DecodingKey;
#[cfg(test)]
use jsonwebtoken::EncodingKey;
use rand::rand_core::UnwrapErr;
use rand::Rng as _;
use sha2::{Digest as _, Sha256};

use super::meta::KeyEntry;
use crate::error::KeyError;
use crate::files;

/// Length of a kid: 16 base64url characters = 96 bits of the thumbprint.
const KID_LEN: usize = 16;

pub(crate) struct LoadedKey {
    pub kid: String,
    /// Decoded once here: `jsonwebtoken::encode` would decode the PKCS#8
    /// DER and derive the public key (a scalar multiplication, as costly as
    /// the signature itself) on every call.
    pub signing: SigningKey,
    /// For tests that forge tokens through `jsonwebtoken::encode`.
    #[cfg(test)]
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    pub public: [u8; 32],
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
    pub tokens_expire_by: Option<Timestamp>,
}

impl LoadedKey {
    pub(crate) fn from_pem(path: &Path, pem: &[u8], entry: &KeyEntry) -> Result<Self, KeyError> {
        let text =
            std::str::from_utf8(pem).map_err(|_| KeyError::malformed(path, "not UTF-8 PEM"))?;
        let signing = parse_pem(path, text)?;
        #[cfg(test)]
        let der = pkcs8_v1(&signing)
            .to_pkcs8_der()
            .map_err(|_| KeyError::malformed(path, "cannot re-encode the key"))?;
        let public = signing.verifying_key().to_bytes();
        Ok(Self {
            kid: entry.kid.clone(),
            #[cfg(test)]
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            decoding: DecodingKey::from_ed_der(&public),
            public,
            signing,
            created_at: Timestamp::from_millis(entry.created_at_ms),
            retired_at: entry.retired_at_ms.map(Timestamp::from_millis),
            tokens_expire_by: entry.tokens_expire_by_ms.map(Timestamp::from_millis),
        })
    }

    /// The public key as an RFC 7517 JWK.
    pub(crate) fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.public),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }
}

impl fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .field("tokens_expire_by", &self.tokens_expire_by)
            .finish_non_exhaustive()
    }
}

/// Reads an Ed25519 private key from PKCS#8 PEM: v1 (RFC 8410, what we
/// write and what OpenSSL writes) or v2 (with the public key, what earlier
/// versions wrote; the public key must then match the private one).
pub(crate) fn parse_pem(path: &Path, text: &str) -> Result<SigningKey, KeyError> {
    SigningKey::from_pkcs8_pem(text)
        .map_err(|_| KeyError::malformed(path, "not a PKCS#8 Ed25519 private key (PEM)"))
}

/// The key as PKCS#8 v1 (RFC 8410): no public key inside, so that OpenSSL,
/// Python `cryptography` and Node `crypto` read it.
fn pkcs8_v1(signing: &SigningKey) -> KeypairBytes {
    KeypairBytes {
        secret_key: signing.to_bytes(),
        public_key: None,
    }
}

/// Creates a fresh key as `dir/<kid>.pem` (mode 0600) and returns its kid.
pub(crate) fn generate_into(dir: &Path) -> Result<String, KeyError> {
    // An Ed25519 secret key is 32 random bytes (RFC 8032 §5.1.5): what
    // `SigningKey::generate` does, here straight from the OS CSPRNG
    // (panicking should the OS refuse, as `OsRng` did).
    let mut secret = ed25519_dalek::SecretKey::default();
    UnwrapErr(rand::rngs::SysRng).fill_bytes(&mut secret);
    write_into(dir, &SigningKey::from_bytes(&secret))
}

/// Writes `signing` as `dir/<kid>.pem` (PKCS#8 v1, mode 0600) and returns
/// its kid.
pub(crate) fn write_into(dir: &Path, signing: &SigningKey) -> Result<String, KeyError> {
    let kid = kid_for(&signing.verifying_key().to_bytes());
    // `pem` zeroizes itself when dropped.
    let pem = pkcs8_v1(signing)
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Crypto(format!("PKCS#8 encoding failed: {e}")))?;
    files::write_atomic(dir, &pem_file_name(&kid), pem.as_bytes())?;
    Ok(kid)
}

pub(crate) fn pem_file_name(kid: &str) -> String {
    format!("{kid}.pem")
}

/// The RFC 7638 JWK thumbprint of the public key, shortened: stable for a
/// key, unrelated for two keys, URL- and file-name-safe.
pub(crate) fn kid_for(public: &[u8; 32]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public)
    );
    let mut kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    kid.truncate(KID_LEN);
    kid
}
