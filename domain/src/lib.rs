//! Token Warden's domain: pure types and rules, no I/O.
//!
//! Time and randomness always come in as arguments: nothing here reads a
//! clock, touches a socket or draws a random number.

pub mod ids;
pub mod lifetimes;
pub mod refresh_token;
pub mod rotation;
pub mod session;
pub mod time;
pub mod user;

pub use ids::{AccessTokenId, IdError, SessionId, UserId};
pub use lifetimes::{Lifetimes, ReuseResponse};
pub use refresh_token::{RefreshSecret, RefreshToken, RefreshTokenError, TokenDigest};
pub use rotation::{decide, ExpiryKind, PresentedToken, RotationDecision, SessionState};
pub use session::{Generation, NewSession, Session, SessionStatus};
pub use time::Timestamp;
pub use user::{
    NewUser, Password, PasswordError, PasswordHash, Role, Roles, User, Username, UsernameError,
};
