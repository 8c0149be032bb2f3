//! A full refresh through the application layer against SQLite (a file, WAL):
//! token parsing, successor derivation, the rotation transaction and signing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use application::ports::ClientInfo;
use application::{LoginInput, RegisterInput};
use criterion::{criterion_group, criterion_main, Criterion};
use domain::{Password, Role, Roles, Username};
use server::startup::{build_warden, open_database, open_keys};
use server::Config;

fn refresh(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db_url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let config = Config::with_defaults(db_url, dir.path().join("keys"));
    let db = open_database(&config).expect("database");
    let warden = build_warden(&config, &db, &open_keys(&config).expect("keys")).expect("warden");
    warden
        .register(RegisterInput {
            username: Username::parse("bench").expect("name"),
            password: Password::parse("bench password".to_owned()).expect("password"),
            roles: Roles::new([Role::user()]),
        })
        .expect("register");
    let client = ClientInfo {
        ip: Some("127.0.0.1".to_owned()),
        user_agent: Some("criterion".to_owned()),
    };
    let login = warden
        .login(LoginInput {
            username: "bench".to_owned(),
            password: "bench password".to_owned(),
            device_name: None,
            previous_token: None,
            client: client.clone(),
            dpop: None,
        })
        .expect("login");
    let mut token = login.refresh_token.expose().to_owned();

    let mut group = c.benchmark_group("application");
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("refresh/sqlite", |b| {
        b.iter(|| {
            let issued = warden
                .refresh(Some(&token), None, client.clone())
                .expect("refresh");
            token = issued.refresh_token.expose().to_owned();
        })
    });
    group.finish();
}

criterion_group!(benches, refresh);
criterion_main!(benches);
