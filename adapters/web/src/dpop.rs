//! The `DPoP` request header (RFC 9449 §4.1) and the request it must match.

use actix_web::HttpRequest;

use application::DpopInput;
use domain::{HttpUri, ProofRejection};

use crate::client::own_origin;
use crate::IpNet;

/// The header a proof travels in.
pub const DPOP_HEADER: &str = "DPoP";

/// Longest `DPoP` header looked at; a longer one is refused unread.
pub const MAX_DPOP_HEADER: usize = 4 * 1024;

/// The request's proof, if it sent one, with the method and the URI the
/// client addressed: `TOKENWARDEN_PUBLIC_URL` and the path when it is set
/// (a proof made for another host is refused, whatever `Host` says); else
/// scheme and host as in the Origin check, [`own_origin`] (forwarded
/// headers count only from `trusted` proxies), and the path as sent.
///
/// # Errors
/// [`ProofRejection::Malformed`] for more than one `DPoP` header, one that
/// is not ASCII or over [`MAX_DPOP_HEADER`] bytes, or a request whose own
/// URI cannot be told.
pub fn dpop_input(
    req: &HttpRequest,
    trusted: &[IpNet],
    public_url: Option<&str>,
) -> Result<Option<DpopInput>, ProofRejection> {
    let mut values = req.headers().get_all(DPOP_HEADER);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() || value.len() > MAX_DPOP_HEADER {
        return Err(ProofRejection::Malformed);
    }
    let proof = value
        .to_str()
        .map_err(|_| ProofRejection::Malformed)?
        .trim()
        .to_owned();
    let origin = match public_url {
        Some(public) => public.to_owned(),
        None => own_origin(req, trusted),
    };
    let (uri, _) = HttpUri::parse(&format!("{origin}{}", req.path()))
        .map_err(|_| ProofRejection::Malformed)?;
    Ok(Some(DpopInput {
        proof,
        method: req.method().as_str().to_owned(),
        uri,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn the_proof_comes_with_the_method_and_the_uri_as_addressed() {
        let req = TestRequest::post()
            .uri("/auth/refresh?ignored=1")
            .insert_header(("Host", "Auth.Example:8443"))
            .insert_header((DPOP_HEADER, "a.b.c"))
            .to_http_request();

        let input = dpop_input(&req, &[], None).unwrap().unwrap();

        assert_eq!(input.proof, "a.b.c");
        assert_eq!(input.method, "POST");
        assert_eq!(
            input.uri,
            HttpUri::new("http", "auth.example", 8443, "/auth/refresh").unwrap()
        );
    }

    #[test]
    fn with_a_public_url_the_uri_is_the_public_one_whatever_the_host() {
        let req = TestRequest::post()
            .uri("/auth/refresh")
            .insert_header(("Host", "evil.example"))
            .insert_header((DPOP_HEADER, "a.b.c"))
            .to_http_request();

        let input = dpop_input(&req, &[], Some("https://auth.example.com"))
            .unwrap()
            .unwrap();

        assert_eq!(
            input.uri,
            HttpUri::new("https", "auth.example.com", 443, "/auth/refresh").unwrap()
        );
    }

    #[test]
    fn no_header_is_no_proof() {
        let req = TestRequest::post().to_http_request();
        assert_eq!(dpop_input(&req, &[], None), Ok(None));
    }

    #[test]
    fn two_headers_or_an_oversized_one_are_malformed() {
        let twice = TestRequest::post()
            .append_header((DPOP_HEADER, "a.b.c"))
            .append_header((DPOP_HEADER, "d.e.f"))
            .to_http_request();
        assert_eq!(
            dpop_input(&twice, &[], None),
            Err(ProofRejection::Malformed)
        );
        let long = TestRequest::post()
            .insert_header((DPOP_HEADER, "a".repeat(MAX_DPOP_HEADER + 1)))
            .to_http_request();
        assert_eq!(dpop_input(&long, &[], None), Err(ProofRejection::Malformed));
    }

    #[test]
    fn forwarded_host_and_proto_count_only_from_a_trusted_proxy() {
        let forwarded = |peer: &str| {
            TestRequest::post()
                .uri("/auth/refresh")
                .peer_addr(format!("{peer}:4000").parse().unwrap())
                .insert_header(("Host", "auth.example"))
                .insert_header(("X-Forwarded-Host", "evil.example"))
                .insert_header(("X-Forwarded-Proto", "https"))
                .insert_header((DPOP_HEADER, "a.b.c"))
                .to_http_request()
        };
        let proxy: IpNet = "10.0.0.0/8".parse().unwrap();

        let untrusted = dpop_input(&forwarded("192.0.2.7"), &[proxy], None)
            .unwrap()
            .unwrap();
        let trusted = dpop_input(&forwarded("10.1.2.3"), &[proxy], None)
            .unwrap()
            .unwrap();

        assert_eq!(
            untrusted.uri,
            HttpUri::new("http", "auth.example", 80, "/auth/refresh").unwrap()
        );
        assert_eq!(
            trusted.uri,
            HttpUri::new("https", "evil.example", 443, "/auth/refresh").unwrap()
        );
    }
}
