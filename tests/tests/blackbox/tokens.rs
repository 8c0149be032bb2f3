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
    let hs256 = encode(&hs_header, &claims, &EncodingKey::from_secret(&x).unwrap()).unwrap();
    let jwks_secret = EncodingKey::from_secret(keys.to_string().as_bytes()).unwrap();
    let pem_hs256 = encode(&hs_header, &claims, &jwks_secret).unwrap();

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
    app.advance(std::time::Duration::from_millis(1_500));
    assert_eq!(app.me_status(&t.access).await, StatusCode::OK, "not yet");
    app.advance(std::time::Duration::from_millis(1_600));
    let r = app.get_bearer("/api/me", &t.access).await;
    assert_eq!(
        r.headers().get("www-authenticate").unwrap(),
        "Bearer error=\"invalid_token\""
    );
    assert_problem(r, StatusCode::UNAUTHORIZED, "token_expired").await;
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let r = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_names_the_issuer_and_absolute_urls_of_this_origin() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let doc = get_json(&app, "/.well-known/openid-configuration").await;
    assert_eq!(
        get_json(&app, "/.well-known/oauth-authorization-server").await,
        doc
    );
    let t = app.signed_up("disco").await;
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(t.access.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(doc["issuer"], claims["iss"]);
    assert_eq!(doc["jwks_uri"], app.url("/.well-known/jwks.json"));
    assert_eq!(doc["introspection_endpoint"], app.url("/auth/introspect"));
    assert_eq!(doc["revocation_endpoint"], app.url("/auth/revoke"));
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["EdDSA"])
    );
    assert_eq!(
        doc["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA"])
    );
    let keys: Value = app
        .client
        .get(doc["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys, jwks(&app).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_urls_follow_the_public_url_and_the_issuer_setting() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.public_url = Some("https://auth.example.com/tw".to_owned());
        c.issuer = "https://auth.example.com/tw".to_owned();
    })
    .await
    .unwrap();
    // Forwarded headers do not move the URLs either way.
    let r = app
        .client
        .get(app.url("/.well-known/openid-configuration"))
        .header("X-Forwarded-Host", "evil.example")
        .send()
        .await
        .unwrap();
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["issuer"], "https://auth.example.com/tw");
    assert_eq!(
        doc["jwks_uri"],
        "https://auth.example.com/tw/.well-known/jwks.json"
    );
    assert_eq!(
        doc["revocation_endpoint"],
        "https://auth.example.com/tw/auth/revoke"
    );
}

/// PyJWT's `PyJWKClient`, configured only from the discovery document,
/// verifies our access tokens and refuses a tampered one.
const PYJWT_VERIFIER: &str = r#"
import json, sys, urllib.request
import jwt
discovery_url, token, audience = sys.argv[1:4]
with urllib.request.urlopen(discovery_url, timeout=10) as r:
    meta = json.load(r)
client = jwt.PyJWKClient(meta["jwks_uri"], timeout=10)
key = client.get_signing_key_from_jwt(token)
claims = jwt.decode(token, key, algorithms=meta["id_token_signing_alg_values_supported"],
                    audience=audience, issuer=meta["issuer"])
head, body, sig = token.split(".")
tampered = head + "." + body + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
try:
    jwt.decode(tampered, key, algorithms=["EdDSA"], audience=audience, issuer=meta["issuer"])
    refused = False
except jwt.InvalidSignatureError:
    refused = True
print(json.dumps({"claims": claims, "tampered_refused": refused}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_party_verifier_configures_itself_from_discovery() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let t = app.signed_up("pyjwt").await;
    let discovery = app.url("/.well-known/openid-configuration");
    let access = t.access.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-c", PYJWT_VERIFIER, &discovery, &access, "tokenwarden"])
            .output()
            .expect("python3 with PyJWT and cryptography (pip install pyjwt cryptography)")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["claims"]["sub"], t.body["user"]["id"]);
    assert_eq!(result["claims"]["sid"], t.session_id);
    assert_eq!(result["tampered_refused"], true);
}
