//! Token Warden's domain: pure types and rules, no I/O.
//!
//! Time and randomness always come in as arguments: nothing here reads a
//! clock, touches a socket or draws a random number.

pub mod account;
pub mod anomaly;
pub mod audit;
pub mod cursor;
pub mod dpop;
pub mod ids;
pub mod lifetimes;
pub mod network;
pub mod refresh_token;
pub mod risk;
pub mod rotation;
pub mod session;
pub mod time;
pub mod user;
pub mod user_agent;

pub use account::{
    AccountChange, AccountEvent, AccountPlan, AccountRuleError, Actor, SessionRevocation,
    UsernamePrefix, UsernamePrefixError,
};
pub use anomaly::{AnomalyPolicy, AnomalyResponse, Sighting};
pub use audit::{
    AnalysisDays, AnalysisDaysError, AuditRecord, PageLimit, PageLimitError, RefreshAttempt,
    RefreshOutcome, SecurityEvent, SecurityEventKind, TokenFingerprint,
};
pub use cursor::{Cursor, CursorError, CursorKey, NameCursor};
pub use dpop::{
    access_token_hash, binding_verdict, check_proof, BindingVerdict, DpopMode, HttpUri,
    HttpUriError, Jkt, JktError, ProofClaims, ProofRejection, ProofRequest, ProofWindow,
};
pub use ids::{AccessTokenId, IdError, SessionId, UserId};
pub use lifetimes::{Lifetimes, ReuseResponse};
pub use network::{same_network, Network};
pub use refresh_token::{RefreshSecret, RefreshToken, RefreshTokenError, TokenDigest};
pub use risk::{
    assess, ActivitySummary, RiskAssessment, RiskLevel, RiskReason, RiskThresholds, Seen,
    SessionUse,
};
pub use rotation::{
    plan, plan_end, EndDecision, EndPlan, EndVia, Ended, ExpiryKind, LastUse, PlannedEvent,
    PlannedRevocation, PresentedKey, PresentedToken, RevocationScope, RotationDecision,
    RotationPlan, RotationPolicy, SessionState,
};
pub use session::{status_of, Generation, NewSession, RevocationReason, Session, SessionStatus};
pub use time::Timestamp;
pub use user::{
    NewUser, Password, PasswordError, PasswordHash, Role, RoleError, Roles, User, Username,
    UsernameError,
};
pub use user_agent::UserAgentFamily;
