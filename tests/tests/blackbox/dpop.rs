//! DPoP (RFC 9449): logins bound to a proof key, access tokens accepted
//! only with a proof by it, and every kind of bad proof refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use domain::DpopMode;
use integration_tests::dpop::{unix_now, DpopKey};
use integration_tests::{
    assert_problem, on_both_backends, tokens_from_cookie, Backend, TestApp, Tokens, PASSWORD, UA,
};
use reqwest::header::{AUTHORIZATION, USER_AGENT, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

on_both_backends!(
    a_login_with_a_proof_binds_the_session_and_its_access_tokens,
    a_bound_access_token_needs_a_fresh_proof_by_its_key_with_ath,
    every_bad_proof_at_login_is_400_invalid_dpop_proof_and_starts_nothing,
);

async fn login_with_proof(app: &TestApp, username: &str, proof: Option<String>) -> Response {
    let mut request = app
        .client
        .post(app.url("/auth/login"))
        .header(USER_AGENT, UA)
        .json(&json!({"username": username, "password": PASSWORD}));
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    request.send().await.unwrap()
}

async fn bound_login(app: &TestApp, username: &str, key: &DpopKey) -> Tokens {
    let proof = key.proof("POST", &app.url("/auth/login"), None);
    let r = login_with_proof(app, username, Some(proof)).await;
    assert_eq!(r.status(), StatusCode::OK);
    tokens_from_cookie(r).await
}

fn payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

async fn me_with(app: &TestApp, scheme: &str, access: &str, proof: Option<String>) -> Response {
    let mut request = app
        .client
        .get(app.url("/api/me"))
        .header(AUTHORIZATION, format!("{scheme} {access}"));
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    request.send().await.unwrap()
}

async fn assert_invalid_proof(r: Response, status: StatusCode) {
    let challenge = r
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        challenge.starts_with("DPoP error=\"invalid_dpop_proof\""),
        "{challenge}"
    );
    assert_problem(r, status, "invalid_dpop_proof").await;
}

const INTROSPECTION_SECRET: &str = "introspection-secret-for-dpop-tests-0123456789";

async fn a_login_with_a_proof_binds_the_session_and_its_access_tokens(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.introspection_token = Some(web::IntrospectionSecret::new(INTROSPECTION_SECRET));
    })
    .await
    else {
        return;
    };
    assert_eq!(app.register("dora").await.status(), StatusCode::CREATED);
    for key in [DpopKey::es256(), DpopKey::eddsa()] {
        let tokens = bound_login(&app, "dora", &key).await;

        assert_eq!(tokens.body["token_type"], "DPoP");
        assert_eq!(
            payload(&tokens.access)["cnf"],
            json!({"jkt": key.thumbprint()})
        );
        let me = me_with(
            &app,
            "DPoP",
            &tokens.access,
            Some(key.proof("GET", &app.url("/api/me"), Some(&tokens.access))),
        )
        .await;
        assert_eq!(me.status(), StatusCode::OK);
    }
    // Unbound logins are as before.
    let plain = app.login("dora").await;
    assert_eq!(plain.body["token_type"], "Bearer");
    assert!(payload(&plain.access).get("cnf").is_none());
    assert_eq!(app.me_status(&plain.access).await, StatusCode::OK);

    // Introspection reports the binding.
    let key = DpopKey::es256();
    let bound = bound_login(&app, "dora", &key).await;
    let introspected: Value = app
        .client
        .post(app.url("/auth/introspect"))
        .bearer_auth(INTROSPECTION_SECRET)
        .json(&json!({"token": bound.access}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["token_type"], "DPoP");
    assert_eq!(introspected["cnf"], json!({"jkt": key.thumbprint()}));
}

async fn a_bound_access_token_needs_a_fresh_proof_by_its_key_with_ath(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    assert_eq!(app.register("erin").await.status(), StatusCode::CREATED);
    let key = DpopKey::es256();
    let tokens = bound_login(&app, "erin", &key).await;
    let me = app.url("/api/me");
    let access = tokens.access.as_str();

    // As a plain Bearer token (a thief without the key): refused.
    let r = me_with(&app, "Bearer", access, None).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // Without a proof, with one by another key, without or with a wrong
    // `ath`, for another URL or method: refused.
    let thief = DpopKey::es256();
    let no_ath = key.proof("GET", &me, None);
    let wrong_ath = key.proof("GET", &me, Some("another-token"));
    let other_url = key.proof("GET", &app.url("/auth/sessions"), Some(access));
    let other_method = key.proof("POST", &me, Some(access));
    for proof in [
        None,
        Some(thief.proof("GET", &me, Some(access))),
        Some(no_ath),
        Some(wrong_ath),
        Some(other_url),
        Some(other_method),
    ] {
        assert_invalid_proof(
            me_with(&app, "DPoP", access, proof).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    // A good proof works once; its replay is refused.
    let good = key.proof("GET", &me, Some(access));
    assert_eq!(
        me_with(&app, "DPoP", access, Some(good.clone()))
            .await
            .status(),
        StatusCode::OK
    );
    assert_invalid_proof(
        me_with(&app, "DPoP", access, Some(good)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // An unbound token under the DPoP scheme is not accepted either.
    let plain = app.login("erin").await;
    let r = me_with(
        &app,
        "DPoP",
        &plain.access,
        Some(key.proof("GET", &me, Some(&plain.access))),
    )
    .await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

/// Live sessions of `username`, as seen from a fresh unbound login (which
/// adds one).
async fn live_sessions(app: &TestApp, username: &str) -> usize {
    let tokens = app.login(username).await;
    let r = app.get_bearer("/auth/sessions", &tokens.access).await;
    let body: Value = r.json().await.unwrap();
    body.as_array()
        .or_else(|| body["items"].as_array())
        .map_or(0, Vec::len)
}

async fn every_bad_proof_at_login_is_400_invalid_dpop_proof_and_starts_nothing(backend: Backend) {
    // Some twenty logins of one username: out of the per-username limit's way.
    let Some(app) = TestApp::spawn_with(backend, |c| c.login_rate_user.count = 100_000).await
    else {
        return;
    };
    assert_eq!(app.register("fred").await.status(), StatusCode::CREATED);
    let key = DpopKey::es256();
    let url = app.url("/auth/login");
    let claims = || key.claims("POST", &url, None);
    let with = |edit: &dyn Fn(&mut Value, &mut Value)| {
        let (mut header, mut claims) = (key.header(), claims());
        edit(&mut header, &mut claims);
        key.sign(&header, &claims)
    };
    let mut private_jwk = key.header();
    private_jwk["jwk"]["d"] = json!("AAAA");
    let replayed = key.proof("POST", &url, None);
    assert_eq!(
        login_with_proof(&app, "fred", Some(replayed.clone()))
            .await
            .status(),
        StatusCode::OK
    );
    let mut signed_by_other = key.header();
    signed_by_other["jwk"] = DpopKey::es256().public_jwk();
    let cases: Vec<(&str, String)> = vec![
        ("not a JWT", "not-a-jwt".to_owned()),
        ("three garbage parts", "a.b.c".to_owned()),
        ("typ JWT", with(&|h, _| h["typ"] = json!("JWT"))),
        ("alg HS256", with(&|h, _| h["alg"] = json!("HS256"))),
        ("alg none", with(&|h, _| h["alg"] = json!("none"))),
        ("no jwk", with(&|h, _| h["jwk"] = Value::Null)),
        ("private key in jwk", key.sign(&private_jwk, &claims())),
        ("jwk of another key", key.sign(&signed_by_other, &claims())),
        (
            "iat in the future",
            with(&|_, c| c["iat"] = json!(unix_now() + 600)),
        ),
        (
            "iat too old",
            with(&|_, c| c["iat"] = json!(unix_now() - 600)),
        ),
        ("no jti", with(&|_, c| c["jti"] = Value::Null)),
        ("htm GET", with(&|_, c| c["htm"] = json!("GET"))),
        (
            "htu another host",
            with(&|_, c| c["htu"] = json!(url.replace("127.0.0.1", "evil.example"))),
        ),
        (
            "htu with a query",
            with(&|_, c| c["htu"] = json!(format!("{url}?a=b"))),
        ),
        (
            "htu another path",
            with(&|_, c| c["htu"] = json!(app.url("/auth/refresh"))),
        ),
        (
            "ath without a token",
            with(&|_, c| c["ath"] = json!("AAAA")),
        ),
        ("replayed jti", replayed),
        ("oversized", format!("{}.e30.AA", "A".repeat(9000))),
    ];
    for (what, proof) in cases {
        let r = login_with_proof(&app, "fred", Some(proof)).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{what}");
        assert_invalid_proof(r, StatusCode::BAD_REQUEST).await;
    }
    // Two DPoP headers.
    let r = app
        .client
        .post(&url)
        .header("DPoP", key.proof("POST", &url, None))
        .header("DPoP", key.proof("POST", &url, None))
        .json(&json!({"username": "fred", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_invalid_proof(r, StatusCode::BAD_REQUEST).await;
    // Only the one good login (and the one counting) started a session.
    assert_eq!(live_sessions(&app, "fred").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_proofs_required_a_login_without_one_is_400_dpop_required() {
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |c| c.dpop = DpopMode::Required).await
    else {
        return;
    };
    assert_eq!(app.register("gail").await.status(), StatusCode::CREATED);
    let r = login_with_proof(&app, "gail", None).await;
    assert_problem(r, StatusCode::BAD_REQUEST, "dpop_required").await;
    let key = DpopKey::eddsa();
    let tokens = bound_login(&app, "gail", &key).await;
    assert_eq!(tokens.body["token_type"], "DPoP");
}
