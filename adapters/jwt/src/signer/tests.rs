use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use domain::{AccessTokenId, Role, Roles, SessionId, UserId};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, EncodingKey};
use rand::{Rng as _, RngExt as _};
use serde_json::{json, Value};
use tempfile::TempDir;

use super::*;
use crate::keystore::RELOAD_INTERVAL;

const ISS: &str = "tokenwarden";
const AUD: &str = "tokenwarden-api";
const TTL: Duration = Duration::from_secs(15 * 60);
/// 2023-11-14T22:13:20Z, in milliseconds.
const T0: i64 = 1_700_000_000_000;

fn at(ms_after_t0: i64) -> Timestamp {
    Timestamp::from_millis(T0 + ms_after_t0)
}

fn secs(s: i64) -> i64 {
    s * 1000
}

fn config(leeway: Duration) -> JwtConfig {
    JwtConfig {
        issuer: ISS.to_owned(),
        audience: AUD.to_owned(),
        leeway,
    }
}

fn signer_with(leeway: Duration) -> (TempDir, JwtSigner) {
    let tmp = tempfile::tempdir().unwrap();
    let store = KeyStore::open(tmp.path()).unwrap();
    (tmp, JwtSigner::new(store, config(leeway)))
}

fn signer() -> (TempDir, JwtSigner) {
    signer_with(Duration::ZERO)
}

fn claims(issued_at: Timestamp) -> AccessClaims {
    AccessClaims {
        user_id: UserId::from_random_bytes([1; 16]),
        session_id: SessionId::from_random_bytes([2; 16]),
        roles: Roles::new([Role::user(), Role::admin()]),
        issued_at,
        expires_at: issued_at.plus(TTL),
        token_id: AccessTokenId::from_random_bytes([3; 16]).to_string(),
        confirmation: None,
    }
}

/// Claims as a valid token of ours carries them, to be altered by a test.
fn wire_claims() -> Value {
    let c = claims(at(0));
    json!({
        "iss": ISS,
        "aud": AUD,
        "sub": c.user_id.to_string(),
        "sid": c.session_id.to_string(),
        "roles": ["admin", "user"],
        "iat": c.issued_at.as_secs(),
        "exp": c.expires_at.as_secs(),
        "jti": c.token_id,
    })
}

fn our_header(signer: &JwtSigner) -> Header {
    let mut h = Header::new(Algorithm::EdDSA);
    h.typ = Some("at+jwt".to_owned());
    h.kid = Some(signer.store().current_kid());
    h
}

/// Signs arbitrary header and claims with the signer's real current key.
fn forge(signer: &JwtSigner, header: &Header, claims: &Value) -> String {
    let snapshot = signer.store().snapshot();
    let key = snapshot.current().unwrap();
    jsonwebtoken::encode(header, claims, &key.encoding).unwrap()
}

fn forge_with(signer: &JwtSigner, edit: impl FnOnce(&mut Value)) -> String {
    let mut c = wire_claims();
    edit(&mut c);
    forge(signer, &our_header(signer), &c)
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn parts(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

fn decoded_part(token: &str, i: usize) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts(token)[i]).unwrap()).unwrap()
}

#[test]
fn a_signed_token_verifies_with_every_claim() {
    let (_dir, signer) = signer();
    let c = claims(at(0));
    let token = signer.sign(&c).unwrap();
    assert_eq!(signer.verify(&token, at(1_000)).unwrap(), c);
}

#[test]
fn a_bound_token_carries_and_yields_its_cnf_jkt() {
    let (_dir, signer) = signer();
    let jkt = domain::Jkt::of_canonical_jwk("{}");
    let c = AccessClaims {
        confirmation: Some(jkt.clone()),
        ..claims(at(0))
    };
    let token = signer.sign(&c).unwrap();

    assert_eq!(decoded_part(&token, 1)["cnf"], json!({"jkt": jkt.as_str()}));
    assert_eq!(signer.verify(&token, at(1_000)).unwrap(), c);
}

#[test]
fn a_cnf_jkt_that_is_no_thumbprint_is_invalid() {
    let (_dir, signer) = signer();
    let token = forge_with(&signer, |c| c["cnf"] = json!({"jkt": "short"}));
    assert_eq!(signer.verify(&token, at(1_000)), Err(VerifyError::Invalid));
}

#[test]
fn tokens_carry_the_rfc_9068_header_and_the_contract_claims() {
    let (_dir, signer) = signer();
    let c = claims(at(0));
    let token = signer.sign(&c).unwrap();

    let header = decoded_part(&token, 0);
    assert_eq!(
        header,
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": signer.store().current_kid()})
    );
    let payload = decoded_part(&token, 1);
    let mut names: Vec<_> = payload.as_object().unwrap().keys().cloned().collect();
    names.sort();
    assert_eq!(
        names,
        ["aud", "exp", "iat", "iss", "jti", "roles", "sid", "sub"]
    );
    assert_eq!(payload, wire_claims());
}

#[test]
fn a_tampered_payload_is_rejected() {
    let (_dir, signer) = signer();
    let token = signer.sign(&claims(at(0))).unwrap();
    let p = parts(&token);
    let mut payload = decoded_part(&token, 1);
    payload["roles"] = json!(["admin", "superuser"]);
    payload["sub"] = json!(UserId::from_random_bytes([9; 16]).to_string());
    let tampered = format!("{}.{}.{}", p[0], b64(&payload), p[2]);
    assert_eq!(signer.verify(&tampered, at(0)), Err(VerifyError::Invalid));
}

#[test]
fn every_single_character_change_is_rejected() {
    let (_dir, signer) = signer();
    let token = signer.sign(&claims(at(0))).unwrap();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    let bytes = token.as_bytes();
    for i in 0..bytes.len() {
        let mut changed = bytes.to_vec();
        changed[i] = alphabet.iter().copied().find(|&c| c != bytes[i]).unwrap();
        let changed = String::from_utf8(changed).unwrap();
        assert!(
            signer.verify(&changed, at(0)).is_err(),
            "position {i} accepted"
        );
    }
}

#[test]
fn alg_none_is_rejected() {
    let (_dir, signer) = signer();
    let kid = signer.store().current_kid();
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": kid});
        let token = format!("{}.{}.", b64(&header), b64(&wire_claims()));
        assert_eq!(
            signer.verify(&token, at(0)),
            Err(VerifyError::Invalid),
            "{alg}"
        );
        // Even with a signature of some kind attached.
        let signed = format!("{}.{}.{}", b64(&header), b64(&wire_claims()), "AAAA");
        assert_eq!(
            signer.verify(&signed, at(0)),
            Err(VerifyError::Invalid),
            "{alg}"
        );
    }
}

#[test]
fn an_hs256_token_keyed_with_the_public_key_is_rejected() {
    use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePublicKey as _};
    let (_dir, signer) = signer();
    let jwks = signer.jwks_at(at(0));
    let x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    let raw = URL_SAFE_NO_PAD.decode(&x).unwrap();
    let public = ed25519_dalek::VerifyingKey::from_bytes(&raw.clone().try_into().unwrap()).unwrap();
    let spki_pem = public.to_public_key_pem(LineEnding::LF).unwrap();
    let spki_der = public.to_public_key_der().unwrap();

    let mut header = our_header(&signer);
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        header.alg = alg;
        for secret in [
            &raw[..],
            x.as_bytes(),
            spki_pem.as_bytes(),
            spki_der.as_bytes(),
        ] {
            let key = EncodingKey::from_secret(secret).unwrap();
            let token = jsonwebtoken::encode(&header, &wire_claims(), &key).unwrap();
            assert_eq!(
                signer.verify(&token, at(0)),
                Err(VerifyError::Invalid),
                "{alg:?}"
            );
        }
    }
}

#[test]
fn other_asymmetric_algorithms_are_rejected() {
    let (_dir, signer) = signer();
    let kid = signer.store().current_kid();
    for alg in [
        "RS256", "ES256", "PS256", "ES384", "Ed25519", "EdDSA256", "",
    ] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": kid});
        let token = format!("{}.{}.{}", b64(&header), b64(&wire_claims()), "c2ln");
        assert_eq!(
            signer.verify(&token, at(0)),
            Err(VerifyError::Invalid),
            "{alg}"
        );
    }
}

#[test]
fn a_token_signed_by_another_key_is_rejected_even_under_our_kid() {
    let (_other_dir, other) = signer();
    let (_dir, signer) = signer();
    let mut header = our_header(&other);
    header.kid = Some(signer.store().current_kid());
    let token = forge(&other, &header, &wire_claims());
    assert_eq!(signer.verify(&token, at(0)), Err(VerifyError::Invalid));
}

#[test]
fn wrong_issuer_or_audience_is_rejected() {
    let (_dir, signer) = signer();
    let cases: Vec<(&str, Value)> = vec![
        ("iss", json!("someone-else")),
        ("iss", json!([ISS])),
        ("iss", json!(null)),
        ("aud", json!("another-api")),
        ("aud", json!(["another-api"])),
        ("aud", json!([])),
        ("aud", json!(null)),
    ];
    for (claim, value) in cases {
        let token = forge_with(&signer, |c| c[claim] = value.clone());
        assert_eq!(
            signer.verify(&token, at(0)),
            Err(VerifyError::Invalid),
            "{claim}={value}"
        );
    }
    let removed = forge_with(&signer, |c| {
        c.as_object_mut().unwrap().remove("aud");
    });
    assert_eq!(signer.verify(&removed, at(0)), Err(VerifyError::Invalid));
}

#[test]
fn an_audience_array_naming_us_is_accepted() {
    let (_dir, signer) = signer();
    let token = forge_with(&signer, |c| c["aud"] = json!(["other", AUD]));
    assert!(signer.verify(&token, at(0)).is_ok());
}

#[test]
fn the_typ_header_must_say_access_token() {
    let (_dir, signer) = signer();
    let mut header = our_header(&signer);
    for (typ, ok) in [
        (Some("at+jwt"), true),
        (Some("application/at+jwt"), true),
        (Some("AT+JWT"), true),
        (Some("JWT"), false),
        (Some("jwt"), false),
        (Some(""), false),
        (Some("at+jwt "), false),
        (None, false),
    ] {
        header.typ = typ.map(str::to_owned);
        let token = forge(&signer, &header, &wire_claims());
        assert_eq!(signer.verify(&token, at(0)).is_ok(), ok, "typ {typ:?}");
    }
}

#[test]
fn critical_header_extensions_are_rejected() {
    let (_dir, signer) = signer();
    let mut header = our_header(&signer);
    header.crit = Some(vec!["exp".to_owned()]);
    let token = forge(&signer, &header, &wire_claims());
    assert_eq!(signer.verify(&token, at(0)), Err(VerifyError::Invalid));
}

#[test]
fn a_missing_or_unknown_kid_is_rejected() {
    let (_dir, signer) = signer();
    let mut header = our_header(&signer);
    for kid in [
        None,
        Some("unknown-kid"),
        Some("../../etc/passwd"),
        Some(""),
    ] {
        header.kid = kid.map(str::to_owned);
        let token = forge(&signer, &header, &wire_claims());
        assert_eq!(
            signer.verify(&token, at(0)),
            Err(VerifyError::Invalid),
            "{kid:?}"
        );
    }
}

#[test]
fn claims_that_are_not_ours_are_rejected() {
    let (_dir, signer) = signer();
    let edits: Vec<(&str, Value)> = vec![
        ("sub", json!("not-a-uuid")),
        ("sub", json!(42)),
        (
            "sub",
            json!(SessionId::from_random_bytes([5; 16])
                .as_uuid()
                .simple()
                .to_string()),
        ),
        ("sid", json!("not-a-uuid")),
        ("sid", json!(null)),
        ("roles", json!("admin")),
        ("roles", json!(["Admin"])),
        ("roles", json!(["admin", 7])),
        ("roles", json!([""])),
        ("iat", json!("yesterday")),
        ("exp", json!("tomorrow")),
        ("exp", json!(-1)),
        ("exp", json!(1.5e300)),
        ("nbf", json!("later")),
        ("jti", json!("")),
        ("jti", json!("x".repeat(200))),
        ("jti", json!(17)),
    ];
    for (claim, value) in edits {
        let token = forge_with(&signer, |c| c[claim] = value.clone());
        assert_eq!(
            signer.verify(&token, at(0)),
            Err(VerifyError::Invalid),
            "{claim}={value}"
        );
    }
    for claim in ["iss", "aud", "sub", "sid", "roles", "iat", "exp", "jti"] {
        let token = forge_with(&signer, |c| {
            c.as_object_mut().unwrap().remove(claim);
        });
        assert_eq!(
            signer.verify(&token, at(0)),
            Err(VerifyError::Invalid),
            "without {claim}"
        );
    }
}

#[test]
fn empty_roles_are_fine() {
    let (_dir, signer) = signer();
    let mut c = claims(at(0));
    c.roles = Roles::default();
    let token = signer.sign(&c).unwrap();
    assert_eq!(
        signer.verify(&token, at(0)).unwrap().roles,
        Roles::default()
    );
}

#[test]
fn a_token_is_valid_only_before_its_expiry() {
    let (_dir, signer) = signer();
    let token = signer.sign(&claims(at(0))).unwrap();
    let exp = secs(15 * 60);
    assert!(signer.verify(&token, at(exp - 1)).is_ok());
    assert_eq!(signer.verify(&token, at(exp)), Err(VerifyError::Expired));
    assert_eq!(
        signer.verify(&token, at(exp + secs(3600))),
        Err(VerifyError::Expired)
    );
}

#[test]
fn the_leeway_extends_expiry_and_forgives_a_near_nbf() {
    let (_dir, signer) = signer_with(Duration::from_secs(30));
    let token = signer.sign(&claims(at(0))).unwrap();
    let exp = secs(15 * 60);
    assert!(signer.verify(&token, at(exp + secs(30) - 1)).is_ok());
    assert_eq!(
        signer.verify(&token, at(exp + secs(30))),
        Err(VerifyError::Expired)
    );

    let soon = forge_with(&signer, |c| c["nbf"] = json!(at(secs(20)).as_secs()));
    assert!(
        signer.verify(&soon, at(0)).is_ok(),
        "nbf 20 s ahead is within 30 s leeway"
    );
    let later = forge_with(&signer, |c| c["nbf"] = json!(at(secs(31)).as_secs()));
    assert_eq!(signer.verify(&later, at(0)), Err(VerifyError::Invalid));
}

#[test]
fn a_future_nbf_is_rejected_and_a_past_one_accepted() {
    let (_dir, signer) = signer();
    let future = forge_with(&signer, |c| c["nbf"] = json!(at(secs(1)).as_secs()));
    assert_eq!(signer.verify(&future, at(0)), Err(VerifyError::Invalid));
    assert!(
        signer.verify(&future, at(secs(1))).is_ok(),
        "valid from nbf on"
    );
    let past = forge_with(&signer, |c| c["nbf"] = json!(at(-secs(60)).as_secs()));
    assert!(signer.verify(&past, at(0)).is_ok());
}

#[test]
fn expiry_is_judged_by_the_callers_clock_not_the_wall_clock() {
    let (_dir, signer) = signer();
    // Issued and expired in 2001: the wall clock would call it expired.
    let old = Timestamp::from_millis(1_000_000_000_000);
    let token = signer.sign(&claims(old)).unwrap();
    assert!(signer
        .verify(&token, old.plus(Duration::from_secs(60)))
        .is_ok());
    // Issued far in the future: the wall clock would call it valid.
    let future = Timestamp::from_millis(4_000_000_000_000);
    let token = signer.sign(&claims(future)).unwrap();
    assert_eq!(
        signer.verify(&token, future.plus(TTL)),
        Err(VerifyError::Expired)
    );
}

#[test]
fn an_expired_token_with_a_bad_signature_is_invalid_not_expired() {
    let (_dir, signer) = signer();
    let token = signer.sign(&claims(at(0))).unwrap();
    let p = parts(&token);
    let mut sig = URL_SAFE_NO_PAD.decode(&p[2]).unwrap();
    sig[0] ^= 1;
    let bad = format!("{}.{}.{}", p[0], p[1], URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(
        signer.verify(&bad, at(secs(3600))),
        Err(VerifyError::Invalid)
    );
}

#[test]
fn garbage_never_panics_and_is_invalid() {
    let (_dir, signer) = signer();
    let valid = signer.sign(&claims(at(0))).unwrap();
    let p = parts(&valid);
    let mut inputs: Vec<String> = vec![
        String::new(),
        ".".into(),
        "..".into(),
        "...".into(),
        "a.b".into(),
        "a.b.c".into(),
        "a.b.c.d".into(),
        "Bearer x".into(),
        "ünïcødé.😀.密码".into(),
        "\0\0\0".into(),
        "=.=.=".into(),
        "e30.e30.".into(),
        "e30.e30.e30".into(),
        format!("{}.e30.{}", p[0], p[2]),
        format!("{}.{}.", p[0], p[1]),
        format!("{}.{}", p[0], p[1]),
        format!("{}.{}.{}.{}", p[0], p[1], p[2], p[2]),
        format!("{}..{}", p[0], p[2]),
        format!(".{}.{}", p[1], p[2]),
        format!("{valid}.."),
        format!(" {valid}"),
        "x".repeat(MAX_TOKEN_LEN + 1),
        format!("{}.{}.{}", p[0], "A".repeat(MAX_TOKEN_LEN), p[2]),
        ".".repeat(10_000),
        format!(
            "{}.{}.{}",
            b64(&json!({"alg": "EdDSA", "typ": "at+jwt", "kid": 5})),
            p[1],
            p[2]
        ),
        format!("{}.{}.{}", b64(&json!([1, 2, 3])), p[1], p[2]),
        format!("{}.{}.{}", b64(&json!("EdDSA")), p[1], p[2]),
    ];
    let mut rng = rand::rng();
    let b64_alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for _ in 0..300 {
        let len = rng.random_range(0..400);
        let junk: String = (0..len)
            .map(|_| {
                if rng.random_bool(0.05) {
                    '.'
                } else {
                    b64_alphabet[rng.random_range(0..b64_alphabet.len())] as char
                }
            })
            .collect();
        inputs.push(junk);
        let mut bytes = vec![0u8; rng.random_range(0..200)];
        rng.fill_bytes(&mut bytes);
        inputs.push(String::from_utf8_lossy(&bytes).into_owned());
        inputs.push(format!(
            "{}.{}.{}",
            p[0],
            URL_SAFE_NO_PAD.encode(&bytes),
            p[2]
        ));
    }
    for input in &inputs {
        assert!(signer.verify(input, at(0)).is_err(), "accepted {input:?}");
    }
}

#[test]
fn the_jwks_really_verifies_our_tokens_with_plain_jsonwebtoken() {
    let (_dir, signer) = signer();
    let token = signer.sign(&claims(at(0))).unwrap();
    let set: JwkSet = serde_json::from_value(signer.jwks_at(at(0))).unwrap();
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    let jwk = set.find(&kid).unwrap();
    let key = DecodingKey::from_jwk(jwk).unwrap();

    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.validate_exp = false;
    validation.set_issuer(&[ISS]);
    validation.set_audience(&[AUD]);
    let data = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap();
    assert_eq!(data.claims, wire_claims());
}

#[test]
fn rotation_keeps_old_tokens_verifying_until_the_old_key_retires() {
    let leeway = Duration::from_secs(5);
    let (_dir, signer) = signer_with(leeway);
    let old_kid = signer.store().current_kid();
    let mut long_lived = claims(at(0));
    long_lived.expires_at = at(secs(10 * 24 * 3600));
    let old_token = signer.sign(&long_lived).unwrap();

    let new_kid = signer.store().rotate(at(0), TTL).unwrap();
    let new_token = signer.sign(&claims(at(0))).unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&new_token).unwrap().kid,
        Some(new_kid.clone())
    );
    assert!(signer.verify(&new_token, at(secs(1))).is_ok());
    assert!(signer.verify(&old_token, at(secs(1))).is_ok());

    let retires = at(0).plus(TTL).plus(RELOAD_INTERVAL).plus(leeway);
    assert!(signer.verify(&old_token, retires).is_ok());
    let kids = |now| -> Vec<Value> {
        signer.jwks_at(now)["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].clone())
            .collect()
    };
    assert_eq!(kids(retires), vec![json!(new_kid), json!(old_kid)]);

    let after = retires.plus(Duration::from_millis(1));
    assert_eq!(signer.verify(&old_token, after), Err(VerifyError::Invalid));
    assert_eq!(kids(after), vec![json!(new_kid)]);
}

#[test]
fn a_rotation_by_another_instance_is_picked_up_on_an_unknown_kid() {
    let (dir, reader) = signer();
    let writer = JwtSigner::new(KeyStore::open(dir.path()).unwrap(), config(Duration::ZERO));
    let new_kid = writer
        .store()
        .rotate(crate::keystore::system_now(), TTL)
        .unwrap();
    let token = writer.sign(&claims(at(0))).unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().kid,
        Some(new_kid)
    );
    assert!(reader.verify(&token, at(0)).is_ok());
}

#[test]
fn debug_output_shows_no_key_material() {
    let (dir, signer) = signer();
    let shown = format!("{signer:?}");
    let kid = signer.store().current_kid();
    assert!(shown.contains(&kid));
    let pem = std::fs::read_to_string(dir.path().join(format!("{kid}.pem"))).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!shown.contains(&body[..16]), "{shown}");
}

#[test]
fn signing_with_the_decoded_key_gives_the_token_jsonwebtoken_would() {
    let (_tmp, signer) = signer();
    let c = claims(at(0));
    let ours = signer.sign(&c).unwrap();
    let snapshot = signer.store().snapshot();
    let key = snapshot.current().unwrap();
    let wire = OutgoingClaims::new(&c, signer.config());
    let theirs = jsonwebtoken::encode(&our_header(&signer), &wire, &key.encoding).unwrap();
    // Ed25519 signatures are deterministic: same key, same bytes.
    assert_eq!(ours, theirs);
    assert_eq!(signer.verify(&ours, at(1_000)).unwrap(), c);
}

#[test]
fn a_token_verified_before_still_expires_and_still_names_its_session() {
    let (_tmp, signer) = signer();
    let c = claims(at(0));
    let token = signer.sign(&c).unwrap();
    assert_eq!(signer.verify(&token, at(1_000)).unwrap(), c);
    assert_eq!(signer.verified.len(), 1);
    // The second answer comes from the memory of the first.
    assert_eq!(signer.verify(&token, at(2_000)).unwrap(), c);
    assert_eq!(
        signer.verify(&token, at(0).plus(TTL)),
        Err(VerifyError::Expired)
    );
}

#[test]
fn only_tokens_that_verified_are_remembered_and_a_changed_byte_is_checked_anew() {
    let (_tmp, signer) = signer();
    let token = signer.sign(&claims(at(0))).unwrap();
    assert!(signer.verify(&token, at(1_000)).is_ok());
    let mut forged = token.clone().into_bytes();
    // A character inside the signature (the last one holds padding bits).
    let inside = forged.len() - 10;
    forged[inside] = if forged[inside] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(signer.verify(&forged, at(1_000)), Err(VerifyError::Invalid));
    let other_claims = forge_with(&signer, |c| c["iss"] = json!("someone-else"));
    assert_eq!(
        signer.verify(&other_claims, at(1_000)),
        Err(VerifyError::Invalid)
    );
    assert_eq!(signer.verified.len(), 1);
}
