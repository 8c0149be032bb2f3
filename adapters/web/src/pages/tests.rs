#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read as _;

use actix_web::dev::ServiceResponse;
use actix_web::test::{self as actix_test, TestRequest};
use actix_web::App;
use utoipa_actix_web::AppExt as _;

use super::*;

async fn get(req: TestRequest) -> ServiceResponse {
    let app =
        actix_test::init_service(App::new().into_utoipa_app().service(Pages).into_app()).await;
    actix_test::call_service(&app, req.to_request()).await
}

fn header(res: &ServiceResponse, name: header::HeaderName) -> String {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[actix_web::test]
async fn every_asset_is_served_gzipped_when_accepted_and_plain_otherwise() {
    for asset in ASSETS {
        let res = get(TestRequest::get()
            .uri(asset.path)
            .insert_header((header::ACCEPT_ENCODING, "br, gzip;q=0.8")))
        .await;
        assert_eq!(res.status(), StatusCode::OK, "{}", asset.path);
        assert_eq!(header(&res, header::CONTENT_TYPE), asset.content_type);
        assert_eq!(header(&res, header::CONTENT_ENCODING), "gzip");
        assert_eq!(header(&res, header::CACHE_CONTROL), "no-cache");
        assert!(header(&res, header::VARY).contains("Accept-Encoding"));
        let body = actix_test::read_body(res).await;
        assert_eq!(gunzip(&body), asset.bytes, "{}", asset.path);

        for refused in [None, Some("gzip;q=0"), Some("identity")] {
            let mut req = TestRequest::get().uri(asset.path);
            if let Some(r) = refused {
                req = req.insert_header((header::ACCEPT_ENCODING, r));
            }
            let res = get(req).await;
            assert_eq!(header(&res, header::CONTENT_ENCODING), "", "{refused:?}");
            assert_eq!(actix_test::read_body(res).await, asset.bytes);
        }
    }
}

#[actix_web::test]
async fn a_matching_etag_gets_304_without_a_body_and_another_gets_the_file() {
    for gzip in [false, true] {
        let req = |etag: Option<&str>| {
            let mut r = TestRequest::get().uri("/assets/tokenwarden.js");
            if gzip {
                r = r.insert_header((header::ACCEPT_ENCODING, "gzip"));
            }
            if let Some(e) = etag {
                r = r.insert_header((header::IF_NONE_MATCH, e.to_owned()));
            }
            r
        };
        let etag = header(&get(req(None)).await, header::ETAG);
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        let res = get(req(Some(&etag))).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&res, header::ETAG), etag);
        assert!(actix_test::read_body(res).await.is_empty());
        let res = get(req(Some(&format!("\"stale\", W/{etag}")))).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "weak comparison");
        let res = get(req(Some("\"stale\""))).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    let plain = header(
        &get(TestRequest::get().uri("/assets/tokenwarden.js")).await,
        header::ETAG,
    );
    let gzip = header(
        &get(TestRequest::get()
            .uri("/assets/tokenwarden.js")
            .insert_header((header::ACCEPT_ENCODING, "gzip")))
        .await,
        header::ETAG,
    );
    assert_ne!(plain, gzip, "each representation has its own tag");
}

#[actix_web::test]
async fn html_pages_carry_a_csp_without_inline_script_and_no_framing() {
    for path in ["/", "/console"] {
        let res = get(TestRequest::get().uri(path)).await;
        let csp = header(&res, header::CONTENT_SECURITY_POLICY);
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(header(&res, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    }
    let res = get(TestRequest::get().uri("/assets/app.js")).await;
    assert_eq!(header(&res, header::CONTENT_SECURITY_POLICY), "");
}

/// What the CSP would block must not be there: inline scripts, inline
/// event handlers, inline styles.
#[test]
fn the_html_has_no_inline_script_handler_or_style() {
    for asset in ASSETS.iter().filter(|a| a.content_type == HTML) {
        let html = std::str::from_utf8(asset.bytes).unwrap();
        for (at, _) in html.match_indices("<script") {
            let tag = &html[at..at + html[at..].find('>').unwrap()];
            assert!(tag.contains(" src="), "{}: inline script {tag}", asset.path);
        }
        let lower = html.to_ascii_lowercase();
        assert!(!lower.contains(" style="), "{}: inline style", asset.path);
        assert!(!lower.contains("<style"), "{}: style element", asset.path);
        for handler in [
            " onclick=",
            " onload=",
            " onsubmit=",
            " onerror=",
            "javascript:",
        ] {
            assert!(!lower.contains(handler), "{}: {handler}", asset.path);
        }
    }
}

/// Every `/assets/…` the pages name and every module the scripts import is
/// served.
#[test]
fn every_referenced_file_is_served() {
    let served = |p: &str| ASSETS.iter().any(|a| a.path == p);
    let mut references = 0;
    for asset in ASSETS {
        let text = std::str::from_utf8(asset.bytes).unwrap();
        for (at, _) in text.match_indices("\"/assets/") {
            let path = &text[at + 1..];
            let path = &path[..path.find('"').unwrap()];
            assert!(served(path), "{} names {path}", asset.path);
            references += 1;
        }
        for (at, _) in text.match_indices("from './") {
            let name = &text[at + "from './".len()..];
            let name = &name[..name.find('\'').unwrap()];
            assert!(
                served(&format!("/assets/{name}")),
                "{} imports {name}",
                asset.path
            );
            references += 1;
        }
    }
    assert!(references >= 8, "{references}");
}

/// Each page's first load (the page and every asset, gzipped, an upper
/// bound) stays under 100 KiB.
#[test]
fn a_first_load_transfers_less_than_100_kib() {
    let total: usize = prepared().iter().map(|p| p.gzip.len()).sum();
    assert!(total < 100 * 1024, "{total} bytes");
    assert!(prepared().iter().all(|p| !p.gzip.is_empty()));
}
