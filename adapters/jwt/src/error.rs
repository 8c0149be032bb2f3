use std::path::PathBuf;

/// Why the keys directory could not be opened, read or changed.
///
/// Messages name files, never their contents.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("keys directory: cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("keys directory: {path} is malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("keys directory: timed out waiting for the lock {path} (remove it if no other process is writing keys)")]
    LockTimeout { path: PathBuf },
    #[error("{path}: not an Ed25519 private key in PKCS#8 PEM ({reason}); nothing was changed")]
    InvalidImport { path: PathBuf, reason: &'static str },
    #[error("keys directory: key {kid} is already in the directory; nothing was changed")]
    AlreadyPresent { kid: String },
    #[error("keys directory: cannot create a key: {0}")]
    Crypto(String),
}

impl KeyError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn malformed(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Malformed {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
