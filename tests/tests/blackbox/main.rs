//! The black-box suite: the real server over HTTP, every test on SQLite and
//! on PostgreSQL. One test binary (one link, one process whose tests all run
//! in parallel); each module is one area of the contract. Run one area with
//! `cargo test -p integration-tests --test blackbox <module>::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod accounts;
mod admin;
mod audit;
mod bad_days;
mod cors;
mod dpop;
mod input;
mod introspection;
mod lifecycle;
mod operations;
mod races;
mod rate_limits;
mod refresh_flood;
mod revocation;
mod rotation_rules;
mod tokens;
mod trace;
mod webhooks;
