//! DPoP proofs (RFC 9449 §4.3): the header, the key in it and the
//! signature. The claims' rules (method, URI, age, `ath`) are the domain's.

use application::ports::DpopProofReader;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use domain::{HttpUri, Jkt, ProofClaims, ProofRejection, Timestamp};
use jsonwebtoken::{Algorithm, DecodingKey};
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
        Some("ES256") => Algorithm::ES256,
        Some("EdDSA") => Algorithm::EdDSA,
        _ => return Err(WrongAlgorithm),
    };
    // We understand no critical extension (RFC 7515 §4.1.11).
    if header.contains_key("crit") {
        return Err(Malformed);
    }
    let jwk = header.get("jwk").and_then(Value::as_object).ok_or(BadKey)?;
    let (key, jkt) = public_key(jwk, algorithm)?;
    let message = &proof[..header_b64.len() + 1 + payload_b64.len()];
    let verified = jsonwebtoken::crypto::verify(signature_b64, message.as_bytes(), &key, algorithm)
        .map_err(|_| BadSignature)?;
    if !verified {
        return Err(BadSignature);
    }
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

/// The verification key and RFC 7638 thumbprint of a public JWK usable with
/// `algorithm`.
fn public_key(
    jwk: &Map<String, Value>,
    algorithm: Algorithm,
) -> Result<(DecodingKey, Jkt), ProofRejection> {
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(ProofRejection::BadKey);
    }
    let member = |name: &str, len: usize| -> Result<&str, ProofRejection> {
        let value = jwk
            .get(name)
            .and_then(Value::as_str)
            .ok_or(ProofRejection::BadKey)?;
        match URL_SAFE_NO_PAD.decode(value) {
            Ok(bytes) if bytes.len() == len => Ok(value),
            _ => Err(ProofRejection::BadKey),
        }
    };
    let kty = jwk.get("kty").and_then(Value::as_str);
    let crv = jwk.get("crv").and_then(Value::as_str);
    match (algorithm, kty, crv) {
        (Algorithm::ES256, Some("EC"), Some("P-256")) => {
            let (x, y) = (member("x", 32)?, member("y", 32)?);
            let key = DecodingKey::from_ec_components(x, y).map_err(|_| ProofRejection::BadKey)?;
            // RFC 7638 §3.2: required members only, in lexicographic order.
            let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
            Ok((key, Jkt::of_canonical_jwk(&canonical)))
        }
        (Algorithm::EdDSA, Some("OKP"), Some("Ed25519")) => {
            let x = member("x", 32)?;
            let key = DecodingKey::from_ed_components(x).map_err(|_| ProofRejection::BadKey)?;
            let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
            Ok((key, Jkt::of_canonical_jwk(&canonical)))
        }
        _ => Err(ProofRejection::BadKey),
    }
}

#[cfg(test)]
mod tests;
