//! Redis adapters for Token Warden: state shared by every instance.
//!
//! [`RedisRevocationList`] implements the application's
//! [`application::ports::RevocationList`] over Redis, with the database list
//! as its durable record and fallback: see [`revocation`] for how entries
//! are written, shared between instances (pub/sub) and checked, and what
//! happens while Redis is down. [`pool`] gives every Redis call a deadline.
//! [`RedisLimiter`] shares the abuse limits (login, registration, failed
//! refreshes) between instances.

pub mod pool;
pub mod rate_limit;
pub mod revocation;
mod subscriber;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use rate_limit::{Fallback, LimiterConfig, RedisLimiter};
pub use revocation::{OnRedisFailure, RedisConfig, RedisRevocationList};
