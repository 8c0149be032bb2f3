//! DPoP (RFC 9449): logins bound to a proof key, access tokens accepted
//! only with a proof by it, and every kind of bad proof refused at login,
//! refresh, logout and revocation without spending anything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use domain::DpopMode;
use integration_tests::dpop::{unix_now, DpopKey};
use integration_tests::{
    assert_problem, clears_cookie, cookie_value, on_both_backends, tokens_from_cookie, Backend,
    TestApp, Tokens, PASSWORD, UA,
};
use reqwest::header::{AUTHORIZATION, COOKIE, USER_AGENT, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

on_both_backends!(
    a_login_with_a_proof_binds_the_session_and_its_access_tokens,
    a_bound_access_token_needs_a_fresh_proof_by_its_key_with_ath,
    every_bad_proof_at_login_is_400_invalid_dpop_proof_and_starts_nothing,
    every_bad_proof_at_refresh_and_logout_is_401_invalid_dpop_proof_and_spends_nothing,
    a_bound_token_is_revoked_only_by_its_key_holder,
    a_login_with_a_stolen_bound_cookie_ends_nothing_without_the_key,
    a_token_refused_under_the_dpop_scheme_gets_a_dpop_challenge,
    an_unbound_refresh_with_a_bad_proof_is_refused_and_spends_nothing,
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

/// Every kind of bad proof for a POST to `url` by `key`, named; `replayed`
/// is a proof for it that the server has already accepted.
fn bad_proofs(key: &DpopKey, url: &str, replayed: String) -> Vec<(&'static str, String)> {
    let claims = || key.claims("POST", url, None);
    let with = |edit: &dyn Fn(&mut Value, &mut Value)| {
        let (mut header, mut claims) = (key.header(), claims());
        edit(&mut header, &mut claims);
        key.sign(&header, &claims)
    };
    let mut private_jwk = key.header();
    private_jwk["jwk"]["d"] = json!("AAAA");
    let mut signed_by_other = key.header();
    signed_by_other["jwk"] = DpopKey::es256().public_jwk();
    vec![
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
            with(&|_, c| c["htu"] = json!(format!("{url}/elsewhere"))),
        ),
        (
            "ath without a token",
            with(&|_, c| c["ath"] = json!("AAAA")),
        ),
        ("replayed jti", replayed),
        ("oversized", format!("{}.e30.AA", "A".repeat(9000))),
    ]
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
    let replayed = key.proof("POST", &url, None);
    assert_eq!(
        login_with_proof(&app, "fred", Some(replayed.clone()))
            .await
            .status(),
        StatusCode::OK
    );
    let cases = bad_proofs(&key, &url, replayed);
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

/// A POST to `path` with the refresh cookie `refresh` and `proofs` as its
/// `DPoP` headers (none, one, or several).
async fn post_with_proofs(app: &TestApp, path: &str, refresh: &str, proofs: &[String]) -> Response {
    let mut request = app
        .client
        .post(app.url(path))
        .header(USER_AGENT, UA)
        .header(COOKIE, format!("refresh_token={refresh}"));
    for proof in proofs {
        request = request.header("DPoP", proof);
    }
    request.send().await.unwrap()
}

/// Asserts a 401 `invalid_dpop_proof` that keeps the refresh cookie.
async fn assert_refused_keeping_the_cookie(r: Response, what: &str) {
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}");
    assert!(!clears_cookie(r.headers()), "{what}: the cookie is kept");
    assert_invalid_proof(r, StatusCode::UNAUTHORIZED).await;
}

/// Presents `token` to `path` with every kind of bad proof by `key` (and no
/// proof, two proofs, a proof for another endpoint, a proof by another
/// key); `used` is a proof for `path` already accepted. Asserts each is a
/// 401 `invalid_dpop_proof` keeping the cookie; returns how many there were.
async fn refuse_every_bad_proof(
    app: &TestApp,
    key: &DpopKey,
    path: &str,
    token: &str,
    used: String,
) -> usize {
    let url = app.url(path);
    let good = || key.proof("POST", &url, None);
    let mut cases: Vec<(&str, Vec<String>)> = bad_proofs(key, &url, used)
        .into_iter()
        .map(|(what, proof)| (what, vec![proof]))
        .collect();
    cases.push(("no proof", Vec::new()));
    cases.push(("two DPoP headers", vec![good(), good()]));
    cases.push((
        "a proof for another endpoint",
        vec![key.proof("POST", &app.url("/auth/introspect"), None)],
    ));
    cases.push((
        "a proof by another key",
        vec![DpopKey::eddsa().proof("POST", &url, None)],
    ));
    for (what, proofs) in &cases {
        let r = post_with_proofs(app, path, token, proofs).await;
        assert_refused_keeping_the_cookie(r, what).await;
    }
    cases.len()
}

async fn every_bad_proof_at_refresh_and_logout_is_401_invalid_dpop_proof_and_spends_nothing(
    backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.admin("boss").await;
    assert_eq!(app.register("hana").await.status(), StatusCode::CREATED);
    let key = DpopKey::es256();
    let first = bound_login(&app, "hana", &key).await;
    let refresh_url = app.url("/auth/refresh");
    let logout_url = app.url("/auth/logout");
    let good = |url: &str| vec![key.proof("POST", url, None)];

    // Refresh: a proof accepted once, then every bad proof with its successor.
    let used = key.proof("POST", &refresh_url, None);
    let r = post_with_proofs(
        &app,
        "/auth/refresh",
        &first.refresh,
        std::slice::from_ref(&used),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let token = cookie_value(r.headers()).unwrap();
    let refused_refreshes = refuse_every_bad_proof(&app, &key, "/auth/refresh", &token, used).await;
    // Nothing was spent: the key holder refreshes that very token.
    let r = post_with_proofs(&app, "/auth/refresh", &token, &good(&refresh_url)).await;
    assert_eq!(r.status(), StatusCode::OK, "the token was not spent");
    let token = cookie_value(r.headers()).unwrap();

    // Logout: a proof accepted once (ending another session of the same
    // key), then every bad proof.
    let other = bound_login(&app, "hana", &key).await;
    let used = key.proof("POST", &logout_url, None);
    let r = post_with_proofs(
        &app,
        "/auth/logout",
        &other.refresh,
        std::slice::from_ref(&used),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let refused_logouts = refuse_every_bad_proof(&app, &key, "/auth/logout", &token, used).await;
    // Nothing ended: the key holder still refreshes, then logs out.
    let r = post_with_proofs(&app, "/auth/refresh", &token, &good(&refresh_url)).await;
    assert_eq!(r.status(), StatusCode::OK, "the session was not ended");
    let token = cookie_value(r.headers()).unwrap();
    let r = post_with_proofs(&app, "/auth/logout", &token, &good(&logout_url)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(clears_cookie(r.headers()));
    let r = post_with_proofs(&app, "/auth/refresh", &token, &good(&refresh_url)).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;

    // Every refusal was recorded: a `dpop_mismatch` audit row per refresh,
    // a `dpop_mismatch` security event per refresh and per logout.
    let id = first.body["user"]["id"].as_str().unwrap();
    let rows = app
        .admin_list_all(&format!("/admin/users/{id}/refresh-logs"), &admin.access)
        .await;
    let mismatches = rows
        .iter()
        .filter(|r| r["outcome"] == "dpop_mismatch")
        .count();
    assert_eq!(mismatches, refused_refreshes);
    let analysis = app
        .admin_get(&format!("/admin/users/{id}/token-analysis"), &admin.access)
        .await;
    assert_eq!(
        analysis["dpop_mismatch_events"],
        refused_refreshes + refused_logouts
    );
}

async fn revoke_with(app: &TestApp, token: &str, proof: Option<String>) -> Response {
    let mut request = app
        .client
        .post(app.url("/auth/revoke"))
        .json(&json!({ "token": token }));
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    request.send().await.unwrap()
}

async fn a_bound_token_is_revoked_only_by_its_key_holder(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    assert_eq!(app.register("ivan").await.status(), StatusCode::CREATED);
    let key = DpopKey::es256();
    let t = bound_login(&app, "ivan", &key).await;
    let revoke_url = app.url("/auth/revoke");
    let me_url = app.url("/api/me");
    let me = |access: &str| key.proof("GET", &me_url, Some(access));

    // A thief holding either token without the key revokes nothing.
    for token in [&t.refresh, &t.access] {
        for proof in [
            None,
            Some(DpopKey::es256().proof("POST", &revoke_url, None)),
            Some(key.proof("POST", &app.url("/auth/logout"), None)),
        ] {
            assert_invalid_proof(
                revoke_with(&app, token, proof).await,
                StatusCode::UNAUTHORIZED,
            )
            .await;
        }
    }
    let r = me_with(&app, "DPoP", &t.access, Some(me(&t.access))).await;
    assert_eq!(r.status(), StatusCode::OK, "nothing was revoked");

    // The key holder revokes the access token, then the session.
    let r = revoke_with(&app, &t.access, Some(key.proof("POST", &revoke_url, None))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = me_with(&app, "DPoP", &t.access, Some(me(&t.access))).await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the access token is revoked"
    );
    let r = revoke_with(&app, &t.refresh, Some(key.proof("POST", &revoke_url, None))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = post_with_proofs(
        &app,
        "/auth/refresh",
        &t.refresh,
        &[key.proof("POST", &app.url("/auth/refresh"), None)],
    )
    .await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;

    // Unbound tokens are revoked by whoever holds them, as before.
    let plain = app.login("ivan").await;
    assert_eq!(
        revoke_with(&app, &plain.refresh, None).await.status(),
        StatusCode::OK
    );
    let r = app.refresh_cookie(&plain.refresh).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;
}

async fn a_login_with_a_stolen_bound_cookie_ends_nothing_without_the_key(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.admin("boss").await;
    assert_eq!(app.register("vic").await.status(), StatusCode::CREATED);
    assert_eq!(app.register("thief").await.status(), StatusCode::CREATED);
    let key = DpopKey::es256();
    let first = bound_login(&app, "vic", &key).await;
    let refresh_url = app.url("/auth/refresh");
    let r = post_with_proofs(
        &app,
        "/auth/refresh",
        &first.refresh,
        &[key.proof("POST", &refresh_url, None)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let current = tokens_from_cookie(r).await;
    let other = bound_login(&app, "vic", &key).await;

    // The thief logs in to their own account carrying the victim's cookie,
    // the current one and a rotated one, without a proof or with their own
    // key: the login succeeds, the victim's sessions stay.
    let login_url = app.url("/auth/login");
    for cookie in [&current.refresh, &first.refresh] {
        for proof in [None, Some(DpopKey::es256().proof("POST", &login_url, None))] {
            let mut request = app
                .client
                .post(&login_url)
                .header(USER_AGENT, UA)
                .header(COOKIE, format!("refresh_token={cookie}"))
                .json(&json!({"username": "thief", "password": PASSWORD}));
            if let Some(proof) = proof {
                request = request.header("DPoP", proof);
            }
            assert_eq!(request.send().await.unwrap().status(), StatusCode::OK);
        }
    }
    // Two of the victim's, and the one `live_sessions` adds.
    assert_eq!(live_sessions(&app, "vic").await, 3, "nothing ended");
    let id = current.body["user"]["id"].as_str().unwrap();
    let events = app
        .admin_get(
            &format!("/admin/security-events?user_id={id}&limit=50"),
            &admin.access,
        )
        .await;
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["dpop_mismatch"; 4], "no reuse, no revocation");
    let r = post_with_proofs(
        &app,
        "/auth/refresh",
        &current.refresh,
        &[key.proof("POST", &refresh_url, None)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK, "the victim carries on");

    // The key holder's own login with the old cookie ends that session.
    let r = app
        .client
        .post(&login_url)
        .header(USER_AGENT, UA)
        .header(COOKIE, format!("refresh_token={}", other.refresh))
        .header("DPoP", key.proof("POST", &login_url, None))
        .json(&json!({"username": "vic", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = post_with_proofs(
        &app,
        "/auth/refresh",
        &other.refresh,
        &[key.proof("POST", &refresh_url, None)],
    )
    .await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;
}

fn challenge(r: &Response) -> String {
    r.headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

async fn a_token_refused_under_the_dpop_scheme_gets_a_dpop_challenge(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    assert_eq!(app.register("dora").await.status(), StatusCode::CREATED);
    let key = DpopKey::es256();
    let t = bound_login(&app, "dora", &key).await;
    let me_url = app.url("/api/me");
    const DPOP_INVALID_TOKEN: &str = "DPoP error=\"invalid_token\", algs=\"ES256 EdDSA\"";

    let garbage = "garbage.token.x";
    let r = me_with(
        &app,
        "DPoP",
        garbage,
        Some(key.proof("GET", &me_url, Some(garbage))),
    )
    .await;
    assert_eq!(challenge(&r), DPOP_INVALID_TOKEN);
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_token").await;

    // The same failure under the Bearer scheme keeps its Bearer challenge.
    let r = me_with(&app, "Bearer", garbage, None).await;
    assert_eq!(challenge(&r), "Bearer error=\"invalid_token\"");
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_token").await;

    // A bound token of a session that has ended.
    let r = post_with_proofs(
        &app,
        "/auth/logout",
        &t.refresh,
        &[key.proof("POST", &app.url("/auth/logout"), None)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = me_with(
        &app,
        "DPoP",
        &t.access,
        Some(key.proof("GET", &me_url, Some(&t.access))),
    )
    .await;
    assert_eq!(challenge(&r), DPOP_INVALID_TOKEN);
    assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;
}

async fn an_unbound_refresh_with_a_bad_proof_is_refused_and_spends_nothing(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let t = app.signed_up("una").await;
    let refresh_url = app.url("/auth/refresh");
    let key = DpopKey::es256();
    for bad in [
        "garbage".to_owned(),
        key.proof("POST", &app.url("/auth/logout"), None),
    ] {
        let r = post_with_proofs(&app, "/auth/refresh", &t.refresh, &[bad]).await;
        assert_refused_keeping_the_cookie(r, "unbound, bad proof").await;
    }
    // Nothing was spent; a valid proof does not bind an unbound session.
    let r = post_with_proofs(
        &app,
        "/auth/refresh",
        &t.refresh,
        &[key.proof("POST", &refresh_url, None)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let next = tokens_from_cookie(r).await;
    assert_eq!(next.body["token_type"], "Bearer");
    assert_eq!(
        app.refresh_cookie(&next.refresh).await.status(),
        StatusCode::OK
    );
}
