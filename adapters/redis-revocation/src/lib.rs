//! Redis adapters for Token Warden: state shared by every instance.

pub mod rate_limit;

pub use rate_limit::RedisLoginLimiter;
