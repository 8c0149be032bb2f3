//! A full refresh through the application layer against SQLite (a file, WAL):
//! token parsing, successor derivation, the rotation transaction and signing;
//! unbound, and bound to a DPoP key (ES256, as the web client signs): the
//! proof's signature check and its `jti` insert in the rotation's
//! transaction come on top. And the proof check alone, next to the bare
//! P-256 signature verification it contains (a reference measured in the
//! same run: on a shared machine only ratios travel).
//!
//! ```sh
//! cargo bench -p server --bench refresh
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use application::ports::{ClientInfo, DpopProofReader as _};
use application::{DpopInput, LoginInput, RegisterInput, TokenWarden};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use domain::{HttpUri, Password, ProofRequest, ProofWindow, Role, Roles, Timestamp, Username};
use jwt::DpopReader;
use server::startup::{build_warden, open_database, open_keys};
use server::Config;

#[path = "support/dpop_proof.rs"]
mod dpop_proof;
use dpop_proof::{unix_now, ProofKey};

const ORIGIN: &str = "https://auth.example";

fn uri(path: &str) -> HttpUri {
    HttpUri::new("https", "auth.example", 443, path).expect("uri")
}

/// The `DPoP` header of a request to `path`, as the web adapter reads it.
fn input(key: &ProofKey, path: &str) -> DpopInput {
    DpopInput {
        proof: key.proof("POST", &format!("{ORIGIN}{path}")),
        method: "POST".to_owned(),
        uri: uri(path),
    }
}

fn client() -> ClientInfo {
    ClientInfo {
        ip: Some("127.0.0.1".to_owned()),
        user_agent: Some("criterion".to_owned()),
    }
}

/// A login of the bench user; bound to `key` when given. Its refresh token.
fn login(warden: &TokenWarden, key: Option<&ProofKey>) -> String {
    let issued = warden
        .login(LoginInput {
            username: "bench".to_owned(),
            password: "bench password".to_owned(),
            device_name: None,
            previous_token: None,
            client: client(),
            dpop: key.map(|k| input(k, "/auth/login")),
        })
        .expect("login");
    assert_eq!(issued.dpop_bound, key.is_some());
    issued.refresh_token.expose().to_owned()
}

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
    let key = ProofKey::new();

    let mut group = c.benchmark_group("application");
    group.measurement_time(Duration::from_secs(10));
    let mut token = login(&warden, None);
    group.bench_function("refresh/sqlite", |b| {
        b.iter(|| {
            let issued = warden
                .refresh(Some(&token), None, client())
                .expect("refresh");
            token = issued.refresh_token.expose().to_owned();
        })
    });
    let mut token = login(&warden, Some(&key));
    group.bench_function("refresh/sqlite/dpop-es256", |b| {
        // Signing the proof is the client's work: done outside the timing.
        b.iter_batched(
            || input(&key, "/auth/refresh"),
            |proof| {
                let issued = warden
                    .refresh(Some(&token), Some(&proof), client())
                    .expect("bound refresh");
                token = issued.refresh_token.expose().to_owned();
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("dpop");
    let window = ProofWindow {
        max_age: Duration::from_secs(60),
        leeway: Duration::ZERO,
    };
    let refresh_uri = uri("/auth/refresh");
    for (alg, signer) in [("es256", &key), ("eddsa", &ProofKey::eddsa())] {
        group.bench_function(format!("read+check/{alg}"), |b| {
            b.iter_batched(
                || signer.proof("POST", &format!("{ORIGIN}/auth/refresh")),
                |proof| {
                    let claims = DpopReader.read(&proof).expect("a valid proof");
                    let request = ProofRequest {
                        method: "POST",
                        uri: &refresh_uri,
                        access_token: None,
                    };
                    let now = Timestamp::from_millis(unix_now() * 1000);
                    domain::check_proof(&claims, &request, window, now).expect("fresh");
                },
                BatchSize::SmallInput,
            )
        });
    }
    // The references: the bare ECDSA P-256 verification a proof needs, with
    // `ring` (what the proof reader uses) and with the pure-Rust `p256`.
    let signing = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).expect("a scalar");
    let message = [7u8; 300];
    let signature: p256::ecdsa::Signature = {
        use p256::ecdsa::signature::Signer as _;
        signing.sign(&message)
    };
    group.bench_function("p256-verify/ring (reference)", |b| {
        let point = signing.verifying_key().to_sec1_point(false);
        let key = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            point.as_bytes().to_vec(),
        );
        let bytes = signature.to_bytes();
        b.iter(|| key.verify(&message, &bytes).expect("valid"))
    });
    group.bench_function("p256-verify/p256 (reference)", |b| {
        use p256::ecdsa::signature::Verifier as _;
        let verifying = *signing.verifying_key();
        b.iter(|| verifying.verify(&message, &signature).expect("valid"))
    });
    group.finish();
}

criterion_group!(benches, refresh);
criterion_main!(benches);
