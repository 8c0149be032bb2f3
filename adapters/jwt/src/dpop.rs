//! DPoP proofs (RFC 9449 §4.3): the header, the key in it and the
//! signature. The claims' rules (method, URI, age, `ath`) are the domain's.

use application::ports::DpopProofReader;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use domain::{HttpUri, Jkt, ProofClaims, ProofRejection, Timestamp};
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ED25519};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Longer `DPoP` headers are refused before any decoding. An ES256 proof
/// with a long `htu` is well under 1 KiB.
pub const MAX_PROOF_LEN: usize = 4 * 1024;

/// The `typ` of a proof (RFC 9449 §4.2).
const PROOF_TYP: &str = "dpop+jwt";

/// JWK members that only a private or symmetric key has (RFC 7518 §6):
/// a proof carrying one has leaked its key, and is refused.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Reads proofs signed with ES256 (P-256) or EdDSA (Ed25519).
///
/// The signature is checked with `ring`: its P-256 verification is about
/// seven times faster than the pure-Rust one `jsonwebtoken` uses, and a
/// bound refresh pays one on its critical path (`docs/performance.md`).
#[derive(Debug, Clone, Copy, Default)]
pub struct DpopReader;

impl DpopProofReader for DpopReader {
    fn read(&self, proof: &str) -> Result<ProofClaims, ProofRejection> {
        read_proof(proof)
    }
}

#[derive(Deserialize)]
struct WireClaims {
    htm: String,
    htu: String,
    /// A NumericDate: seconds, possibly with a fraction (RFC 7519 §2).
    iat: f64,
    jti: String,
    #[serde(default)]
    ath: Option<String>,
}

fn read_proof(proof: &str) -> Result<ProofClaims, ProofRejection> {
    use ProofRejection::{BadKey, BadSignature, Malformed, WrongAlgorithm, WrongType};
    if proof.is_empty() || proof.len() > MAX_PROOF_LEN {
        return Err(Malformed);
    }
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Malformed);
    };
    let header: Map<String, Value> = decode_json(header_b64)?;
    let typ = header.get("typ").and_then(Value::as_str).ok_or(WrongType)?;
    if !typ.eq_ignore_ascii_case(PROOF_TYP) && !typ.eq_ignore_ascii_case("application/dpop+jwt") {
        return Err(WrongType);
    }
    let algorithm = match header.get("alg").and_then(Value::as_str) {
        Some("ES256") => Algorithm::Es256,
        Some("EdDSA") => Algorithm::EdDsa,
        _ => return Err(WrongAlgorithm),
    };
    // We understand no critical extension (RFC 7515 §4.1.11).
    if header.contains_key("crit") {
        return Err(Malformed);
    }
    let jwk = header.get("jwk").and_then(Value::as_object).ok_or(BadKey)?;
    let (key, jkt) = public_key(jwk, algorithm)?;
    let message = &proof[..header_b64.len() + 1 + payload_b64.len()];
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| BadSignature)?;
    key.verify(message.as_bytes(), &signature)
        .map_err(|_| BadSignature)?;
    let claims: WireClaims = decode_json(payload_b64)?;
    if !claims.iat.is_finite() {
        return Err(Malformed);
    }
    // Saturating float-to-int conversion: an absurd `iat` is refused as
    // stale or future by the domain, never wrapped.
    #[allow(clippy::cast_possible_truncation, reason = "saturating by definition")]
    let iat = Timestamp::from_millis((claims.iat * 1000.0) as i64);
    let (htu, htu_has_query_or_fragment) = match HttpUri::parse(&claims.htu) {
        Ok((uri, extra)) => (Some(uri), extra),
        Err(_) => (None, false),
    };
    Ok(ProofClaims {
        jkt,
        htm: claims.htm,
        htu,
        htu_has_query_or_fragment,
        iat,
        jti: claims.jti,
        ath: claims.ath,
    })
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, ProofRejection> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| ProofRejection::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| ProofRejection::Malformed)
}

/// The two signature algorithms a proof may use.
#[derive(Debug, Clone, Copy)]
enum Algorithm {
    Es256,
    EdDsa,
}

/// The verification key and RFC 7638 thumbprint of a public JWK usable with
/// `algorithm`.
fn public_key(
    jwk: &Map<String, Value>,
    algorithm: Algorithm,
) -> Result<(UnparsedPublicKey<Vec<u8>>, Jkt), ProofRejection> {
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(ProofRejection::BadKey);
    }
    // A coordinate: its text (for the thumbprint) and its bytes.
    let member = |name: &str, len: usize| -> Result<(&str, Vec<u8>), ProofRejection> {
        let value = jwk
            .get(name)
            .and_then(Value::as_str)
            .ok_or(ProofRejection::BadKey)?;
        match URL_SAFE_NO_PAD.decode(value) {
            Ok(bytes) if bytes.len() == len => Ok((value, bytes)),
            _ => Err(ProofRejection::BadKey),
        }
    };
    let kty = jwk.get("kty").and_then(Value::as_str);
    let crv = jwk.get("crv").and_then(Value::as_str);
    match (algorithm, kty, crv) {
        (Algorithm::Es256, Some("EC"), Some("P-256")) => {
            let ((x, x_bytes), (y, y_bytes)) = (member("x", 32)?, member("y", 32)?);
            // A SEC 1 uncompressed point. `ring` parses it when it verifies:
            // a point off the curve fails there, as a bad signature.
            let point = [&[4u8][..], &x_bytes, &y_bytes].concat();
            let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point);
            // RFC 7638 §3.2: required members only, in lexicographic order.
            let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
            Ok((key, Jkt::of_canonical_jwk(&canonical)))
        }
        (Algorithm::EdDsa, Some("OKP"), Some("Ed25519")) => {
            let (x, x_bytes) = member("x", 32)?;
            let key = UnparsedPublicKey::new(&ED25519, x_bytes);
            let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
            Ok((key, Jkt::of_canonical_jwk(&canonical)))
        }
        _ => Err(ProofRejection::BadKey),
    }
}

#[cfg(test)]
mod tests;
