//! The persistence adapter against real databases. Every test runs twice:
//! on a fresh SQLite file and on a fresh PostgreSQL database (skipped, with
//! a message, when `TEST_DATABASE_URL` is not set).

// Test code: a failed fixture must stop the test. (`allow-unwrap-in-tests`
// only covers `#[test]` functions, not the helpers they share.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod accounts;
mod audit;
mod cleanup;
mod connect;
mod dpop;
mod race;
mod revocations;
mod rotation;
mod sessions;
mod users;
mod webhooks;
