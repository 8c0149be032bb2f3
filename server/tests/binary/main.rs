//! The real `tokenwarden` binary (CLI, start-up, processes sharing
//! PostgreSQL and Redis, signals, logs, settings) and the OpenAPI document
//! against the routes the server registers. One test binary; run one area
//! with `cargo test -p server --test binary <module>::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod config;
mod crash;
mod instances;
mod openapi_routes;
mod operations;
mod password_work;
mod process;
mod slow_clients;
mod support;
mod webhooks;
