//! Helpers for the audit and admin tests: admins, refreshes from chosen
//! networks (through a trusted proxy) and devices, and the raw audit counts.

use std::collections::BTreeMap;
use std::sync::Arc;

use application::RegisterInput;
use domain::{Password, Role, Roles, Username};
use password::{Argon2Hasher, HashCost};
use reqwest::header::{COOKIE, USER_AGENT};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use server::startup::{build_warden_with, open_database, open_keys};

use crate::{TestApp, Tokens, PASSWORD};

/// The loopback peer of every test request: trust it as a proxy to let
/// `X-Forwarded-For` say which network a request comes from.
pub const LOOPBACK_PROXY: &str = "127.0.0.1/32";

impl TestApp {
    /// Creates `username` with the roles `admin` and `user` (as `tokenwarden
    /// user create --role admin` does, but with the suite's cheap password
    /// hashes) and logs in.
    pub async fn admin(&self, username: &str) -> Tokens {
        let config = self.config.clone();
        let name = username.to_owned();
        tokio::task::spawn_blocking(move || {
            let db = open_database(&config).unwrap();
            let hasher = Arc::new(Argon2Hasher::with_cost(1, HashCost::Minimal));
            let keys = open_keys(&config).unwrap();
            let warden = build_warden_with(&config, &db, &keys, hasher).unwrap();
            warden
                .register(RegisterInput {
                    username: Username::parse(&name).unwrap(),
                    password: Password::parse(PASSWORD.to_owned()).unwrap(),
                    roles: Roles::new([Role::admin(), Role::user()]),
                })
                .unwrap();
        })
        .await
        .unwrap();
        self.login(username).await
    }

    /// `POST /auth/refresh` with the cookie, from `ip` (an `X-Forwarded-For`
    /// entry, believed when the loopback is a trusted proxy) and `user_agent`.
    pub async fn refresh_from(&self, refresh: &str, ip: &str, user_agent: &str) -> Response {
        self.client
            .post(self.url("/auth/refresh"))
            .header(USER_AGENT, user_agent)
            .header("x-forwarded-for", ip)
            .header(COOKIE, format!("refresh_token={refresh}"))
            .send()
            .await
            .unwrap()
    }

    /// `GET` an admin path, expecting 200, and the JSON body.
    pub async fn admin_get(&self, path: &str, access: &str) -> Value {
        let r = self.get_bearer(path, access).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        assert_eq!(
            r.headers().get("cache-control").unwrap(),
            "no-store",
            "admin answers are not cached"
        );
        r.json().await.unwrap()
    }

    /// Every item of a paginated admin list, following `next`.
    pub async fn admin_list_all(&self, path: &str, access: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut next: Option<String> = None;
        loop {
            let page_path = match &next {
                Some(cursor) => format!("{path}{separator}before={cursor}"),
                None => path.to_owned(),
            };
            let page = self.admin_get(&page_path, access).await;
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(cursor) => next = Some(cursor.to_owned()),
                None => return items,
            }
        }
    }

    /// Audit rows per outcome over the whole trail, every user and none.
    pub async fn audit_outcomes(&self) -> BTreeMap<String, u64> {
        let url = self.database.url().to_owned();
        tokio::task::spawn_blocking(move || {
            persistence::Database::connect(&url, 1)
                .unwrap()
                .refresh_audit_outcomes()
                .unwrap()
        })
        .await
        .unwrap()
    }

    /// How many requests the audit rows stand for, per outcome (their
    /// `count`s added up: throttled refreshes share one row per IP and
    /// minute).
    pub async fn audit_requests(&self) -> BTreeMap<String, u64> {
        let url = self.database.url().to_owned();
        tokio::task::spawn_blocking(move || {
            persistence::Database::connect(&url, 1)
                .unwrap()
                .refresh_audit_requests()
                .unwrap()
        })
        .await
        .unwrap()
    }

    /// How many audit rows exist in all.
    pub async fn audit_rows(&self) -> u64 {
        self.audit_outcomes().await.values().sum()
    }
}

/// The user id in a token response.
pub fn user_id_of(tokens: &Tokens) -> String {
    tokens.body["user"]["id"].as_str().unwrap().to_owned()
}
