//! Diesel persistence for Token Warden, over PostgreSQL and SQLite.
//!
//! One code path serves both backends through a [`diesel::MultiConnection`]
//! ([`AnyConnection`]), so the schema only uses column types both share: ids
//! are hyphenated UUID text, instants are `BIGINT` milliseconds since the
//! epoch, token digests are lower-case hex, roles a comma-separated list.
//!
//! [`Database`] implements the [`application::ports::UserRepository`],
//! [`application::ports::SessionRepository`] and
//! [`application::ports::ExpiredDataStore`] ports; [`DbRevocationList`] the
//! [`application::ports::RevocationList`]. [`Database`] is also the
//! [`application::ports::WebhookOutbox`]: every security event is queued
//! for the webhook receiver in its own transaction (`webhooks.rs`). Every port method that
//! writes is one transaction that takes its locks up front: `BEGIN
//! IMMEDIATE` on SQLite (a deferred transaction that later upgrades to a
//! write lock fails with "database is locked" under load), and row locks
//! (`SELECT ... FOR UPDATE`) on PostgreSQL, always user before session so
//! that two transactions cannot deadlock. See `transaction.rs`.

mod audit;
mod checkpoint;
mod cleanup;
mod connection;
mod dpop;
mod error;
mod fixed;
mod group_commit;
mod locations;
mod migrations;
mod revocations;
mod rotation;
mod rows;
mod schema;
mod sessions;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod transaction;
mod users;
mod webhooks;

pub use connection::{AnyConnection, Backend, Database, PoolState};
pub use revocations::DbRevocationList;
