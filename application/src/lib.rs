//! Token Warden's use cases, written against the ports in [`ports`].
//!
//! [`TokenWarden`] holds the ports and settings; each use case lives in its
//! own module with its own error enum. Use cases never open transactions:
//! atomicity is the adapters' job (see [`ports::SessionRepository`]).

pub mod admin;
pub mod audit;
pub mod auth;
mod issue;
pub mod login;
pub mod ports;
pub mod refresh;
pub mod register;
pub mod sessions;

#[cfg(test)]
mod test_support;

use std::sync::Arc;

use domain::{AnomalyPolicy, Lifetimes, RefreshSecret, ReuseResponse};

pub use admin::{AdminError, Page, TokenAnalysis};
pub use audit::RefreshRejection;
pub use auth::{AuthError, Principal};
pub use issue::IssuedTokens;
pub use login::{LoginError, LoginInput};
pub use refresh::RefreshError;
pub use register::{RegisterError, RegisterInput};
pub use sessions::{DeleteSessionError, SessionView};

use ports::{
    AccessTokenSigner, AuditTrail, Clock, CryptoError, PasswordHasher, RandomSource,
    SessionRepository, StoreError, UserRepository,
};

/// Policies the use cases follow.
#[derive(Debug, Clone)]
pub struct Settings {
    pub lifetimes: Lifetimes,
    pub reuse_response: ReuseResponse,
    /// Key that successor refresh tokens are derived with.
    pub refresh_secret: RefreshSecret,
    /// When a refresh from another network and device counts as theft.
    pub anomaly: AnomalyPolicy,
}

/// The adapters behind the ports.
pub struct Ports {
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub signer: Arc<dyn AccessTokenSigner>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn RandomSource>,
    pub audit: Arc<dyn AuditTrail>,
}

/// The application service: every use case is a method on it.
pub struct TokenWarden {
    ports: Ports,
    settings: Settings,
}

impl TokenWarden {
    pub fn new(ports: Ports, settings: Settings) -> Self {
        Self { ports, settings }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }
}

/// A failure no client can cause or fix: storage down or crypto broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unexpected {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}
