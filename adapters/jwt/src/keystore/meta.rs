//! `keys.json`: which key is current and when the others were retired.

use std::path::Path;

use domain::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::KeyError;

const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Metadata {
    pub version: u32,
    /// The kid new tokens are signed with.
    pub current: String,
    pub keys: Vec<KeyEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyEntry {
    pub kid: String,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// When the key stopped being current; `None` for the current key.
    #[serde(default)]
    pub retired_at_ms: Option<i64>,
    /// The latest expiry of any token the key may have signed: published and
    /// verifying until then (plus the verifier's leeway).
    #[serde(default)]
    pub tokens_expire_by_ms: Option<i64>,
}

impl KeyEntry {
    pub(crate) fn new(kid: String, created_at: Timestamp) -> Self {
        Self {
            kid,
            created_at_ms: created_at.as_millis(),
            retired_at_ms: None,
            tokens_expire_by_ms: None,
        }
    }
}

impl Metadata {
    pub(crate) fn new(first: KeyEntry) -> Self {
        Self {
            version: FORMAT_VERSION,
            current: first.kid.clone(),
            keys: vec![first],
        }
    }

    pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<Self, KeyError> {
        let meta: Metadata =
            serde_json::from_slice(bytes).map_err(|e| KeyError::malformed(path, e.to_string()))?;
        if meta.version != FORMAT_VERSION {
            return Err(KeyError::malformed(
                path,
                format!("unsupported version {}", meta.version),
            ));
        }
        if let Some(bad) = meta.keys.iter().find(|k| !is_valid_kid(&k.kid)) {
            return Err(KeyError::malformed(
                path,
                format!("invalid kid {:?}", bad.kid),
            ));
        }
        if !meta.keys.iter().any(|k| k.kid == meta.current) {
            return Err(KeyError::malformed(
                path,
                "the current kid has no key entry",
            ));
        }
        Ok(meta)
    }

    pub(crate) fn to_json(&self) -> Result<Vec<u8>, KeyError> {
        let mut bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| KeyError::Crypto(format!("cannot serialise key metadata: {e}")))?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

/// A kid is also a file name: 1–64 characters of the base64url alphabet, so
/// a tampered `keys.json` cannot point outside the directory.
pub(crate) fn is_valid_kid(kid: &str) -> bool {
    (1..=64).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
