//! Token Warden's use cases, written against the ports in [`ports`].
//!
//! [`TokenWarden`] holds the ports and settings; each use case lives in its
//! own module with its own error enum. Use cases never open transactions:
//! atomicity is the adapters' job (see [`ports::SessionRepository`]).

pub mod abuse;
pub mod accounts;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod cleanup;
pub mod deadline;
pub mod dpop;
pub mod introspect;
mod issue;
pub mod login;
pub mod ports;
pub mod rate_limit;
pub mod refresh;
pub mod register;
pub mod revocation;
pub mod sessions;
pub mod status_cache;
pub mod webhooks;

#[cfg(test)]
mod test_support;

use std::sync::Arc;
use std::time::Duration;

use domain::{AnomalyPolicy, Lifetimes, RefreshSecret, ReuseResponse};

pub use accounts::{ChangePasswordError, Manager, UserDetail, UserPatch};
pub use admin::{AdminError, Page, TokenAnalysis};
pub use audit::RefreshRejection;
pub use auth::{AccessCredentials, AuthError, AuthScheme, Principal};
pub use dpop::{Dpop, DpopError, DpopInput, DpopSettings};
pub use introspect::RevokeError;
pub use issue::IssuedTokens;
pub use login::{AdmittedLogin, LoginError, LoginInput};
pub use refresh::RefreshError;
pub use register::{RegisterError, RegisterInput, RegistrationPolicy};
pub use sessions::{DeleteSessionError, LogoutError, SessionView};

use rate_limit::{IpRateLimiter, LoginRateLimiter, Unlimited};

use ports::{
    AccessTokenSigner, AuditTrail, Clock, CryptoError, PasswordHasher, RandomSource,
    RevocationList, SessionRepository, StoreError, UserRepository,
};

/// Policies the use cases follow.
#[derive(Debug, Clone)]
pub struct Settings {
    pub lifetimes: Lifetimes,
    pub reuse_response: ReuseResponse,
    /// Key that successor refresh tokens are derived with.
    pub refresh_secret: RefreshSecret,
    /// The access-token verifier's clock leeway: revocation entries outlive
    /// the tokens they cover by this much.
    pub clock_leeway: Duration,
    /// When a refresh from another network and device counts as theft.
    pub anomaly: AnomalyPolicy,
    /// `TOKENWARDEN_RETRY_WINDOW`: how long after a rotation its client may
    /// retry with the parent token and get the same successor.
    pub retry_window: Duration,
}

impl Settings {
    /// The rules [`domain::plan`] follows.
    pub fn rotation_policy(&self) -> domain::RotationPolicy {
        domain::RotationPolicy::new(
            &self.lifetimes,
            self.retry_window,
            self.reuse_response,
            self.anomaly,
        )
    }
}

/// The adapters behind the ports.
pub struct Ports {
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub signer: Arc<dyn AccessTokenSigner>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn RandomSource>,
    pub revocations: Arc<dyn RevocationList>,
    pub audit: Arc<dyn AuditTrail>,
}

/// The application service: every use case is a method on it.
pub struct TokenWarden {
    ports: Ports,
    settings: Settings,
    login_limiter: Arc<dyn LoginRateLimiter>,
    ip_limiter: Arc<dyn IpRateLimiter>,
    /// Which addresses' throttled refreshes are audited this minute.
    throttled_refreshes: abuse::ThrottleLog,
    /// Sessions recently found live (see [`status_cache`]).
    status_cache: status_cache::LiveSessions,
    /// Proof checking, when enabled ([`TokenWarden::with_dpop`]).
    dpop: Option<Dpop>,
    /// Who may create an account over the API.
    registration: RegistrationPolicy,
}

impl TokenWarden {
    /// The service over `ports`, without abuse limits until
    /// [`TokenWarden::with_login_limiter`] and
    /// [`TokenWarden::with_ip_limiter`] give it limiters (tools without
    /// network clients, such as the CLI and benchmarks, need none).
    pub fn new(ports: Ports, settings: Settings) -> Self {
        Self {
            ports,
            settings,
            login_limiter: Arc::new(Unlimited),
            ip_limiter: Arc::new(Unlimited),
            throttled_refreshes: abuse::ThrottleLog::default(),
            status_cache: status_cache::LiveSessions::default(),
            dpop: None,
            registration: RegistrationPolicy::Open,
        }
    }

    /// Sets who may register (default [`RegistrationPolicy::Open`]).
    #[must_use]
    pub fn with_registration(mut self, policy: RegistrationPolicy) -> Self {
        self.registration = policy;
        self
    }

    /// Replaces the login rate limiter (see [`rate_limit`]).
    #[must_use]
    pub fn with_login_limiter(mut self, limiter: Arc<dyn LoginRateLimiter>) -> Self {
        self.login_limiter = limiter;
        self
    }

    /// Replaces the per-IP limiter of registrations and failed refreshes.
    #[must_use]
    pub fn with_ip_limiter(mut self, limiter: Arc<dyn IpRateLimiter>) -> Self {
        self.ip_limiter = limiter;
        self
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
