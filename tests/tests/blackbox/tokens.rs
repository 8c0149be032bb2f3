//! Access tokens: claims, JWKS, and forgeries that must be refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use integration_tests::*;
use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

on_both_backends!(
    access_tokens_carry_the_contract_claims_and_verify_with_the_jwks,
    forged_tokens_are_refused,
    bearer_challenges_follow_rfc_6750,
);

async fn jwks(app: &TestApp) -> Value {
    let r = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn access_tokens_carry_the_contract_claims_and_verify_with_the_jwks(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let t = app.signed_up("vera").await;
    let header = decode_header(&t.access).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let kid = header.kid.unwrap();

    let keys = jwks(&app).await;
    let key = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("kid in JWKS");
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    let decoding = DecodingKey::from_ed_components(key["x"].as_str().unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["tokenwarden"]);
    validation.set_audience(&["tokenwarden"]);
    validation.leeway = 0;
    let claims: Value = decode::<Value>(&t.access, &decoding, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], t.body["user"]["id"]);
    assert_eq!(claims["sid"], t.session_id);
    assert_eq!(claims["roles"], json!(["user"]));
    assert_eq!(claims["iss"], "tokenwarden");
    assert_eq!(claims["aud"], "tokenwarden");
    assert!(claims["jti"].is_string());
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 900);
}

fn resign_payload(token: &str, change: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    change(&mut payload);
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        parts[2]
    )
}

async fn forged_tokens_are_refused(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let t = app.signed_up("walt").await;
    let admin_claims = |p: &mut Value| p["roles"] = json!(["admin"]);

    // Tampered payload, original signature.
    let tampered = resign_payload(&t.access, admin_claims);
    // alg: none.
    let parts: Vec<&str> = t.access.split('.').collect();
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#);
    let alg_none = format!("{none_header}.{}.", parts[1]);
    // HS256 signed with the public key as the HMAC secret.
    let keys = jwks(&app).await;
    let x = URL_SAFE_NO_PAD
        .decode(keys["keys"][0]["x"].as_str().unwrap())
        .unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.typ = Some("at+jwt".into());
    hs_header.kid = keys["keys"][0]["kid"].as_str().map(str::to_owned);
    let hs256 = encode(&hs_header, &claims, &EncodingKey::from_secret(&x)).unwrap();
    let pem_hs256 = encode(
        &hs_header,
        &claims,
        &EncodingKey::from_secret(keys.to_string().as_bytes()),
    )
    .unwrap();

    for (name, forged) in [
        ("tampered", tampered),
        ("alg none", alg_none),
        ("hs256 with public key", hs256),
        ("hs256 with jwks", pem_hs256),
        ("garbage", "a.b.c".to_owned()),
        ("empty parts", "..".to_owned()),
    ] {
        let r = app.get_bearer("/api/me", &forged).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    // The genuine token still works.
    assert_eq!(app.me_status(&t.access).await, StatusCode::OK);
}

async fn bearer_challenges_follow_rfc_6750(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let r = app.client.get(app.url("/api/me")).send().await.unwrap();
    assert_eq!(r.headers().get("www-authenticate").unwrap(), "Bearer");
    assert_problem(r, StatusCode::UNAUTHORIZED, "missing_token").await;
    let r = app
        .client
        .get(app.url("/api/me"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers().get("www-authenticate").unwrap(),
        "Bearer error=\"invalid_token\""
    );
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[tokio::test]
async fn expired_access_tokens_are_reported_as_expired() {
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |c| {
        // `exp` is in whole seconds, so a token may die up to a second early.
        c.lifetimes.access_ttl = std::time::Duration::from_secs(3)
    })
    .await
    else {
        return;
    };
    let t = app.signed_up("xena").await;
    assert_eq!(app.me_status(&t.access).await, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;
    let r = app.get_bearer("/api/me", &t.access).await;
    assert_eq!(
        r.headers().get("www-authenticate").unwrap(),
        "Bearer error=\"invalid_token\""
    );
    assert_problem(r, StatusCode::UNAUTHORIZED, "token_expired").await;
}
