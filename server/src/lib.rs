//! Token Warden's composition root: typed configuration, the adapters wired
//! behind the application's ports, and the HTTP server.

pub mod cleanup;
pub mod cli;
pub mod commands;
pub mod config;
pub mod config_check;
pub mod config_file;
pub mod metrics;
pub mod operations;
pub mod revocations;
pub mod startup;
pub mod system;
pub mod telemetry;
pub mod user_commands;

pub use config::{Config, ConfigError, Settings};
pub use startup::{Application, StartupError};
