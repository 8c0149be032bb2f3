//! Sender-constrained sessions (DPoP, RFC 9449): what a proof must satisfy
//! once its signature has been checked, and what a session bound to a key
//! demands of every use.
//!
//! The signature and the JSON live in an adapter; the rules here take the
//! parsed claims, the request as the client addressed it, and `now`.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::time::Timestamp;

/// The RFC 7638 SHA-256 thumbprint of a proof key, base64url without
/// padding (43 characters): what a bound session and its access tokens
/// (`cnf.jkt`) remember of the key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Jkt(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256 JWK thumbprint")]
pub struct JktError;

impl Jkt {
    /// The thumbprint of a key whose canonical JSON (RFC 7638 §3.2: the
    /// required members in lexicographic order, no whitespace) is `canonical`.
    pub fn of_canonical_jwk(canonical: &str) -> Self {
        Self(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
    }

    /// A thumbprint as stored or as carried in `cnf.jkt`.
    pub fn parse(raw: &str) -> Result<Self, JktError> {
        match URL_SAFE_NO_PAD.decode(raw) {
            Ok(bytes) if bytes.len() == 32 && raw.len() == 43 => Ok(Self(raw.to_owned())),
            _ => Err(JktError),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compared in constant time: a thumbprint is public, but nothing is
    /// lost by not leaking how much of it matched.
    pub fn matches(&self, other: &Jkt) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl fmt::Debug for Jkt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jkt({})", self.0)
    }
}

impl fmt::Display for Jkt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `ath` an access token must be presented with: base64url SHA-256 of
/// its ASCII text (RFC 9449 §4.2).
pub fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// `TOKENWARDEN_DPOP`: whether a login must carry a proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DpopMode {
    /// A login with a proof is bound, one without stays unbound.
    #[default]
    Optional,
    /// A login without a proof is refused (`dpop_required`).
    Required,
}

impl DpopMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Optional => "optional",
            Self::Required => "required",
        }
    }
}

/// An absolute HTTP(S) URI reduced to what a proof's `htu` is compared on:
/// scheme, host, port (the scheme's default when absent) and path. Built by
/// the adapters, which parse URIs; compared here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUri {
    scheme: String,
    host: String,
    port: u16,
    path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an http(s) URI")]
pub struct HttpUriError;

/// RFC 3986 §6.2.2.2: `%XX` of an unreserved character is the character,
/// any other `%xx` upper case; everything else as it is.
fn normalize_percent_encoding(path: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if let (b'%', Some(&h), Some(&l)) = (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            if let (Some(h), Some(l)) = (hex(h), hex(l)) {
                // Two hex digits: at most 0xff.
                let value = u8::try_from(h * 16 + l).unwrap_or(u8::MAX);
                if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
                    out.push(char::from(value));
                } else {
                    out.push('%');
                    out.push_str(&format!("{value:02X}"));
                }
                i += 3;
                continue;
            }
        }
        // `i` is at a char boundary: only ASCII is ever skipped past.
        let c = path[i..]
            .chars()
            .next()
            .unwrap_or(char::REPLACEMENT_CHARACTER);
        out.push(c);
        i += c.len_utf8();
    }
    out
}

impl HttpUri {
    /// Scheme and host are compared case-insensitively (RFC 3986 §6.2.2.1),
    /// the path after percent-encoding normalisation (§6.2.2.2: unreserved
    /// characters decoded, the hex digits of the others upper case); an
    /// empty path is `/`.
    pub fn new(scheme: &str, host: &str, port: u16, path: &str) -> Result<Self, HttpUriError> {
        let scheme = scheme.to_ascii_lowercase();
        if !matches!(scheme.as_str(), "http" | "https") || host.is_empty() {
            return Err(HttpUriError);
        }
        Ok(Self {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            path: if path.is_empty() {
                "/".to_owned()
            } else {
                normalize_percent_encoding(path)
            },
        })
    }

    /// Parses an absolute URI (WHATWG URL rules: default ports, `.`
    /// segments and percent-encoding normalised), ignoring any query or
    /// fragment; the second value tells whether there was one.
    ///
    /// # Errors
    /// [`HttpUriError`] when `raw` is not an absolute http(s) URI.
    pub fn parse(raw: &str) -> Result<(Self, bool), HttpUriError> {
        let url = url::Url::parse(raw).map_err(|_| HttpUriError)?;
        let has_query_or_fragment = url.query().is_some() || url.fragment().is_some();
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err(HttpUriError);
        };
        Ok((
            Self::new(url.scheme(), host, port, url.path())?,
            has_query_or_fragment,
        ))
    }
}

/// The claims of a proof whose signature, `typ`, `alg` and public key have
/// been checked by the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofClaims {
    /// The key that signed the proof.
    pub jkt: Jkt,
    pub htm: String,
    /// `htu` as parsed; `None` when it is not an absolute http(s) URI.
    pub htu: Option<HttpUri>,
    /// `htu` carried a query or a fragment (RFC 9449 §4.2 forbids both).
    pub htu_has_query_or_fragment: bool,
    pub iat: Timestamp,
    pub jti: String,
    pub ath: Option<String>,
}

/// Longest `jti` accepted; longer ones are not worth storing.
pub const MAX_JTI_LEN: usize = 256;

/// What the request a proof came with looks like.
#[derive(Debug, Clone, Copy)]
pub struct ProofRequest<'a> {
    /// The HTTP method, upper case as sent (`POST`).
    pub method: &'a str,
    /// The URI the client addressed (scheme, host and port as it saw them).
    pub uri: &'a HttpUri,
    /// The access token sent alongside (`Authorization: DPoP …`), whose
    /// hash `ath` must carry; `None` for login, refresh and logout.
    pub access_token: Option<&'a str>,
}

/// How old a proof may be and how much clock skew is forgiven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofWindow {
    /// `TOKENWARDEN_DPOP_MAX_AGE`.
    pub max_age: Duration,
    /// `TOKENWARDEN_CLOCK_LEEWAY`.
    pub leeway: Duration,
}

impl ProofWindow {
    /// Until when a proof issued at `iat` could be accepted: its `jti` must
    /// be remembered that long and no longer.
    pub fn remember_until(&self, iat: Timestamp) -> Timestamp {
        iat.plus(self.max_age).plus(self.leeway)
    }
}

/// Why a proof was refused. Every variant is answered `invalid_dpop_proof`;
/// the variant goes to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofRejection {
    #[error("the proof is not a well-formed DPoP JWT")]
    Malformed,
    #[error("typ is not dpop+jwt")]
    WrongType,
    #[error("alg is neither ES256 nor EdDSA")]
    WrongAlgorithm,
    #[error("the jwk header is missing, unusable or a private key")]
    BadKey,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("htm is not the request's method")]
    MethodMismatch,
    #[error("htu is not the request's URI")]
    UriMismatch,
    #[error("htu carries a query or fragment")]
    UriHasQuery,
    #[error("iat is in the future")]
    IssuedInFuture,
    #[error("iat is older than the maximum proof age")]
    Stale,
    #[error("jti is missing or too long")]
    BadJti,
    #[error("jti was already used")]
    Replayed,
    #[error("ath is missing or does not match the access token")]
    AccessTokenHashMismatch,
    #[error("ath sent without an access token")]
    UnexpectedAccessTokenHash,
    #[error("the proof is signed by another key than the session's")]
    KeyMismatch,
}

/// Checks `claims` against the request and the clock. The `jti` is then
/// to be remembered until [`ProofWindow::remember_until`] and refused if
/// seen before (the caller's store does that, atomically).
///
/// # Errors
/// The first rule the proof breaks.
pub fn check_proof(
    claims: &ProofClaims,
    request: &ProofRequest<'_>,
    window: ProofWindow,
    now: Timestamp,
) -> Result<(), ProofRejection> {
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(ProofRejection::BadJti);
    }
    // RFC 9110 §9.1: methods are case-sensitive.
    if claims.htm != request.method {
        return Err(ProofRejection::MethodMismatch);
    }
    if claims.htu_has_query_or_fragment {
        return Err(ProofRejection::UriHasQuery);
    }
    if claims.htu.as_ref() != Some(request.uri) {
        return Err(ProofRejection::UriMismatch);
    }
    if claims.iat > now.plus(window.leeway) {
        return Err(ProofRejection::IssuedInFuture);
    }
    if now > window.remember_until(claims.iat) {
        return Err(ProofRejection::Stale);
    }
    match (request.access_token, &claims.ath) {
        (Some(token), Some(ath)) => {
            let expected = access_token_hash(token);
            if !bool::from(expected.as_bytes().ct_eq(ath.as_bytes())) {
                return Err(ProofRejection::AccessTokenHashMismatch);
            }
        }
        (Some(_), None) => return Err(ProofRejection::AccessTokenHashMismatch),
        (None, Some(_)) => return Err(ProofRejection::UnexpectedAccessTokenHash),
        (None, None) => {}
    }
    Ok(())
}

/// What a use of a session's token (refresh, or an access token) shows
/// about the key, against what the session is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingVerdict {
    /// The session is not bound: the token works without a proof, as in v1.
    Unbound,
    /// Bound, and a valid proof by the bound key was presented.
    Proven,
    /// Bound, and no proof or a proof by another key: refused, nothing
    /// spent (a stolen bound token is useless, and the victim keeps it).
    Mismatch,
}

/// The binding rule: a bound session is usable only with a proof by its
/// key. `presented` is the key of a proof already checked by
/// [`check_proof`]; an unbound session ignores it.
pub fn binding_verdict(bound: Option<&Jkt>, presented: Option<&Jkt>) -> BindingVerdict {
    match (bound, presented) {
        (None, _) => BindingVerdict::Unbound,
        (Some(bound), Some(key)) if bound.matches(key) => BindingVerdict::Proven,
        (Some(_), _) => BindingVerdict::Mismatch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_000);
    const WINDOW: ProofWindow = ProofWindow {
        max_age: Duration::from_secs(60),
        leeway: Duration::from_secs(0),
    };

    fn uri() -> HttpUri {
        HttpUri::new("https", "auth.example", 443, "/auth/refresh").unwrap()
    }

    fn jkt(byte: u8) -> Jkt {
        Jkt::parse(&URL_SAFE_NO_PAD.encode([byte; 32])).unwrap()
    }

    fn claims() -> ProofClaims {
        ProofClaims {
            jkt: jkt(1),
            htm: "POST".to_owned(),
            htu: Some(uri()),
            htu_has_query_or_fragment: false,
            iat: NOW,
            jti: "e1j3V_bKic8-LAEB".to_owned(),
            ath: None,
        }
    }

    fn check(claims: &ProofClaims, access_token: Option<&str>) -> Result<(), ProofRejection> {
        let uri = uri();
        let request = ProofRequest {
            method: "POST",
            uri: &uri,
            access_token,
        };
        check_proof(claims, &request, WINDOW, NOW)
    }

    #[test]
    fn a_fresh_proof_for_this_request_passes() {
        assert_eq!(check(&claims(), None), Ok(()));
    }

    #[test]
    fn another_method_is_refused() {
        let c = ProofClaims {
            htm: "GET".to_owned(),
            ..claims()
        };
        assert_eq!(check(&c, None), Err(ProofRejection::MethodMismatch));
        let lower = ProofClaims {
            htm: "post".to_owned(),
            ..claims()
        };
        assert_eq!(check(&lower, None), Err(ProofRejection::MethodMismatch));
    }

    #[test]
    fn another_host_port_scheme_or_path_is_refused() {
        for other in [
            HttpUri::new("https", "evil.example", 443, "/auth/refresh"),
            HttpUri::new("https", "auth.example", 8443, "/auth/refresh"),
            HttpUri::new("http", "auth.example", 443, "/auth/refresh"),
            HttpUri::new("https", "auth.example", 443, "/auth/logout"),
        ] {
            let c = ProofClaims {
                htu: Some(other.unwrap()),
                ..claims()
            };
            assert_eq!(check(&c, None), Err(ProofRejection::UriMismatch));
        }
        let unparsable = ProofClaims {
            htu: None,
            ..claims()
        };
        assert_eq!(check(&unparsable, None), Err(ProofRejection::UriMismatch));
    }

    #[test]
    fn host_and_scheme_compare_without_case() {
        let c = ProofClaims {
            htu: Some(HttpUri::new("HTTPS", "Auth.Example", 443, "/auth/refresh").unwrap()),
            ..claims()
        };
        assert_eq!(check(&c, None), Ok(()));
    }

    #[test]
    fn a_query_or_fragment_in_htu_is_refused() {
        let c = ProofClaims {
            htu_has_query_or_fragment: true,
            ..claims()
        };
        assert_eq!(check(&c, None), Err(ProofRejection::UriHasQuery));
    }

    #[test]
    fn parsing_normalises_default_ports_and_reports_a_query() {
        assert_eq!(
            HttpUri::parse("https://Auth.Example:443/auth/refresh"),
            Ok((uri(), false))
        );
        assert_eq!(
            HttpUri::parse("https://auth.example/auth/refresh?x=1"),
            Ok((uri(), true))
        );
        assert_eq!(
            HttpUri::parse("https://auth.example/auth/refresh#f"),
            Ok((uri(), true))
        );
        assert_eq!(
            HttpUri::parse("http://127.0.0.1:8080/auth/login").map(|(u, _)| u),
            HttpUri::new("http", "127.0.0.1", 8080, "/auth/login")
        );
        assert_eq!(HttpUri::parse("/auth/refresh"), Err(HttpUriError));
        assert_eq!(HttpUri::parse("mailto:a@b"), Err(HttpUriError));
    }

    #[test]
    fn paths_compare_after_percent_encoding_normalisation() {
        let plain = HttpUri::new("http", "a", 80, "/auth/login");
        assert_eq!(HttpUri::new("http", "a", 80, "/auth/%6Cogin"), plain);
        assert_eq!(HttpUri::new("http", "a", 80, "/auth/%6cogin"), plain);
        assert_eq!(
            HttpUri::parse("http://a/auth/%6Cogin").unwrap().0,
            plain.unwrap()
        );
        // Reserved and other characters stay encoded, hex digits upper case.
        assert_eq!(
            HttpUri::new("http", "a", 80, "/a%2fb%c3%A9"),
            HttpUri::new("http", "a", 80, "/a%2Fb%C3%A9")
        );
        assert_ne!(
            HttpUri::new("http", "a", 80, "/a%2Fb"),
            HttpUri::new("http", "a", 80, "/a/b")
        );
        // Stray percent signs and non-ASCII text are left as they are.
        assert_eq!(
            HttpUri::new("http", "a", 80, "/%zz/%4/é%").unwrap().path,
            "/%zz/%4/é%"
        );
    }

    #[test]
    fn only_http_and_https_uris_exist() {
        assert_eq!(HttpUri::new("ftp", "a", 21, "/"), Err(HttpUriError));
        assert_eq!(HttpUri::new("https", "", 443, "/"), Err(HttpUriError));
        assert_eq!(
            HttpUri::new("https", "a", 443, ""),
            HttpUri::new("https", "a", 443, "/")
        );
    }

    #[test]
    fn iat_in_the_future_is_refused_beyond_the_leeway() {
        let c = ProofClaims {
            iat: NOW.plus(Duration::from_secs(5)),
            ..claims()
        };
        assert_eq!(check(&c, None), Err(ProofRejection::IssuedInFuture));
        let lenient = ProofWindow {
            leeway: Duration::from_secs(5),
            ..WINDOW
        };
        let uri = uri();
        let request = ProofRequest {
            method: "POST",
            uri: &uri,
            access_token: None,
        };
        assert_eq!(check_proof(&c, &request, lenient, NOW), Ok(()));
    }

    #[test]
    fn a_proof_older_than_the_max_age_is_stale() {
        let at_limit = ProofClaims {
            iat: NOW.minus(WINDOW.max_age),
            ..claims()
        };
        assert_eq!(check(&at_limit, None), Ok(()));
        let older = ProofClaims {
            iat: NOW.minus(WINDOW.max_age).minus(Duration::from_millis(1)),
            ..claims()
        };
        assert_eq!(check(&older, None), Err(ProofRejection::Stale));
    }

    #[test]
    fn the_jti_must_be_present_and_short() {
        for jti in [String::new(), "x".repeat(MAX_JTI_LEN + 1)] {
            let c = ProofClaims { jti, ..claims() };
            assert_eq!(check(&c, None), Err(ProofRejection::BadJti));
        }
    }

    #[test]
    fn with_an_access_token_ath_must_be_its_hash() {
        let token = "eyJ.access.token";
        let good = ProofClaims {
            ath: Some(access_token_hash(token)),
            ..claims()
        };
        assert_eq!(check(&good, Some(token)), Ok(()));
        assert_eq!(
            check(&good, Some("another.token")),
            Err(ProofRejection::AccessTokenHashMismatch)
        );
        assert_eq!(
            check(&claims(), Some(token)),
            Err(ProofRejection::AccessTokenHashMismatch)
        );
        assert_eq!(
            check(&good, None),
            Err(ProofRejection::UnexpectedAccessTokenHash)
        );
    }

    #[test]
    fn the_ath_of_a_known_token_matches_rfc_9449() {
        // RFC 9449 §7.1, the example access token and its `ath`.
        assert_eq!(
            access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn jkt_parses_only_43_character_sha256_thumbprints() {
        assert!(Jkt::parse(&URL_SAFE_NO_PAD.encode([7u8; 32])).is_ok());
        assert_eq!(Jkt::parse("short"), Err(JktError));
        assert_eq!(
            Jkt::parse(&URL_SAFE_NO_PAD.encode([7u8; 31])),
            Err(JktError)
        );
        assert_eq!(Jkt::parse(&"!".repeat(43)), Err(JktError));
    }

    #[test]
    fn the_thumbprint_of_the_rfc_7638_example_key() {
        // RFC 7638 §3.1 uses an RSA key; RFC 9449 §6.1's EC example key:
        let canonical = r#"{"crv":"P-256","kty":"EC","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"}"#;
        assert_eq!(
            Jkt::of_canonical_jwk(canonical).as_str(),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
    }

    #[test]
    fn the_remembered_window_covers_every_instant_a_proof_is_accepted() {
        let lenient = ProofWindow {
            max_age: Duration::from_secs(60),
            leeway: Duration::from_secs(3),
        };
        let iat = NOW;
        assert_eq!(
            lenient.remember_until(iat),
            NOW.plus(Duration::from_secs(63))
        );
    }

    fn any_jkt() -> impl Strategy<Value = Option<Jkt>> {
        prop_oneof![Just(None), (0u8..4).prop_map(|b| Some(jkt(b)))]
    }

    proptest! {
        /// An unbound session never depends on a proof; a bound one is
        /// usable exactly when the proof's key is the bound key.
        #[test]
        fn a_bound_session_is_usable_only_with_its_own_key(
            bound in any_jkt(),
            presented in any_jkt(),
        ) {
            let verdict = binding_verdict(bound.as_ref(), presented.as_ref());
            match (&bound, &presented) {
                (None, _) => prop_assert_eq!(verdict, BindingVerdict::Unbound),
                (Some(b), Some(p)) if b == p => prop_assert_eq!(verdict, BindingVerdict::Proven),
                (Some(_), _) => prop_assert_eq!(verdict, BindingVerdict::Mismatch),
            }
        }

        /// Whatever the clock, a proof passes only while
        /// `iat - leeway <= now <= iat + max_age + leeway`, and the jti is
        /// remembered at least until the last instant it could pass.
        #[test]
        fn a_proof_passes_only_inside_its_window(
            offset_ms in -200_000i64..200_000,
            max_age_s in 1u64..120,
            leeway_s in 0u64..10,
        ) {
            let window = ProofWindow {
                max_age: Duration::from_secs(max_age_s),
                leeway: Duration::from_secs(leeway_s),
            };
            let c = ProofClaims { iat: NOW.plus_signed_ms(offset_ms), ..claims() };
            let uri = uri();
            let request = ProofRequest { method: "POST", uri: &uri, access_token: None };
            let passed = check_proof(&c, &request, window, NOW).is_ok();
            let lower = c.iat.minus(window.leeway);
            let upper = window.remember_until(c.iat);
            prop_assert_eq!(passed, lower <= NOW && NOW <= upper);
        }
    }

    trait PlusSigned {
        fn plus_signed_ms(self, ms: i64) -> Self;
    }

    impl PlusSigned for Timestamp {
        fn plus_signed_ms(self, ms: i64) -> Self {
            Timestamp::from_millis(self.as_millis() + ms)
        }
    }
}
