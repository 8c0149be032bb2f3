use super::*;
use ed25519_dalek::Signer as _;
use serde_json::json;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn p256_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap()
}

fn p256_jwk(key: &p256::ecdsa::SigningKey) -> Value {
    let point = key.verifying_key().to_sec1_point(false);
    json!({"kty": "EC", "crv": "P-256", "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())})
}

fn claims() -> Value {
    json!({"htm": "POST", "htu": "https://auth.example/auth/refresh", "iat": 1_800_000_000, "jti": "abc-123"})
}

fn es256(header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature: p256::ecdsa::Signature = p256_key().sign(input.as_bytes());
    format!("{input}.{}", b64(&signature.to_bytes()))
}

fn es256_header() -> Value {
    json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": p256_jwk(&p256_key())})
}

#[test]
fn an_es256_proof_yields_its_claims_and_the_keys_thumbprint() {
    let claims = DpopReader.read(&es256(&es256_header(), &claims())).unwrap();

    assert_eq!(claims.htm, "POST");
    assert_eq!(
        claims.htu,
        HttpUri::parse("https://auth.example/auth/refresh")
            .ok()
            .map(|(u, _)| u)
    );
    assert_eq!(claims.iat, Timestamp::from_millis(1_800_000_000_000));
    assert_eq!(claims.jti, "abc-123");
    assert_eq!(claims.ath, None);
    let jwk = p256_jwk(&p256_key());
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap()
    );
    assert_eq!(claims.jkt, Jkt::of_canonical_jwk(&canonical));
}

#[test]
fn an_eddsa_proof_is_read_too() {
    let key = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let x = b64(key.verifying_key().as_bytes());
    let header =
        json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": x}});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims().to_string().as_bytes())
    );
    let proof = format!("{input}.{}", b64(&key.sign(input.as_bytes()).to_bytes()));

    let read = DpopReader.read(&proof).unwrap();

    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    assert_eq!(read.jkt, Jkt::of_canonical_jwk(&canonical));
}

#[test]
fn a_fractional_iat_counts_its_milliseconds() {
    let mut c = claims();
    c["iat"] = json!(1_800_000_000.25);
    let read = DpopReader.read(&es256(&es256_header(), &c)).unwrap();
    assert_eq!(read.iat, Timestamp::from_millis(1_800_000_000_250));
}

#[test]
fn a_query_in_htu_is_reported() {
    let mut c = claims();
    c["htu"] = json!("https://auth.example/auth/refresh?a=b");
    let read = DpopReader.read(&es256(&es256_header(), &c)).unwrap();
    assert!(read.htu_has_query_or_fragment);
}

#[test]
fn a_tampered_payload_does_not_verify() {
    let proof = es256(&es256_header(), &claims());
    let mut parts: Vec<&str> = proof.split('.').collect();
    let mut other = claims();
    other["htm"] = json!("GET");
    let forged = b64(other.to_string().as_bytes());
    parts[1] = &forged;
    assert_eq!(
        DpopReader.read(&parts.join(".")),
        Err(ProofRejection::BadSignature)
    );
}

#[test]
fn a_proof_signed_by_another_key_than_its_jwk_does_not_verify() {
    let other = p256::ecdsa::SigningKey::from_slice(&[8u8; 32]).unwrap();
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": p256_jwk(&other)});
    assert_eq!(
        DpopReader.read(&es256(&header, &claims())),
        Err(ProofRejection::BadSignature)
    );
}

#[test]
fn header_faults_are_named() {
    let cases = [
        (
            json!({"alg": "ES256", "jwk": p256_jwk(&p256_key())}),
            ProofRejection::WrongType,
        ),
        (
            json!({"typ": "JWT", "alg": "ES256", "jwk": p256_jwk(&p256_key())}),
            ProofRejection::WrongType,
        ),
        (
            json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": p256_jwk(&p256_key())}),
            ProofRejection::WrongAlgorithm,
        ),
        (
            json!({"typ": "dpop+jwt", "alg": "none", "jwk": p256_jwk(&p256_key())}),
            ProofRejection::WrongAlgorithm,
        ),
        (
            json!({"typ": "dpop+jwt", "alg": "ES256"}),
            ProofRejection::BadKey,
        ),
        (
            json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": p256_jwk(&p256_key())}),
            ProofRejection::BadKey,
        ),
        (
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "EC", "crv": "Ed25519", "x": "AA", "y": "AA"}}),
            ProofRejection::BadKey,
        ),
        (
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}}),
            ProofRejection::BadKey,
        ),
        (
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": p256_jwk(&p256_key()), "crit": ["x"]}),
            ProofRejection::Malformed,
        ),
    ];
    for (header, expected) in cases {
        assert_eq!(
            DpopReader.read(&es256(&header, &claims())),
            Err(expected),
            "{header}"
        );
    }
}

#[test]
fn a_private_key_in_the_jwk_is_refused() {
    let mut jwk = p256_jwk(&p256_key());
    jwk["d"] = json!(b64(&[7u8; 32]));
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
    assert_eq!(
        DpopReader.read(&es256(&header, &claims())),
        Err(ProofRejection::BadKey)
    );
}

#[test]
fn malformed_and_oversized_proofs_are_refused_without_panicking() {
    let oversized = format!("{}.e30.AA", "A".repeat(MAX_PROOF_LEN));
    for proof in [
        "",
        "a.b",
        "a.b.c.d",
        "!!!.e30.AA",
        "e30.e30.AA",
        oversized.as_str(),
    ] {
        assert!(DpopReader.read(proof).is_err(), "{proof}");
    }
    let mut missing = claims();
    missing.as_object_mut().unwrap().remove("jti");
    assert_eq!(
        DpopReader.read(&es256(&es256_header(), &missing)),
        Err(ProofRejection::Malformed)
    );
}
