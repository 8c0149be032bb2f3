//! The pages the binary serves: `/` (the reference web client) and
//! `/console` (the security console), with their scripts and stylesheet
//! under `/assets/`. The files are compiled in (`static/`), gzipped once on
//! first use, and answered with a strong `ETag` (304 on `If-None-Match`),
//! `Cache-Control: no-cache` (revalidate every time; the files change with
//! the binary) and, on HTML, a Content-Security-Policy that allows no
//! inline script and no framing.
//!
//! The scripts are plain ES modules: no build step, nothing to install.
//! `static/tokenwarden.js` is the reusable client module (see the README).

use std::io::Write as _;
use std::sync::OnceLock;

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, Paths};
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder, Schema};
use utoipa_actix_web::OpenApiFactory;

/// The policy of every HTML page: scripts, styles and connections only
/// from this origin, no inline script or style, no plugins, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// A file the binary serves.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
    pub summary: &'static str,
}

/// Every page and asset, by URL path.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: HTML,
        bytes: include_bytes!("../static/index.html"),
        summary: "The reference web client (HTML)",
    },
    Asset {
        path: "/console",
        content_type: HTML,
        bytes: include_bytes!("../static/console.html"),
        summary: "The security console for admins (HTML)",
    },
    Asset {
        path: "/assets/tokenwarden.js",
        content_type: JS,
        bytes: include_bytes!("../static/tokenwarden.js"),
        summary: "The browser client module (ES module, no dependencies)",
    },
    Asset {
        path: "/assets/ui.js",
        content_type: JS,
        bytes: include_bytes!("../static/ui.js"),
        summary: "Helpers shared by the pages (ES module)",
    },
    Asset {
        path: "/assets/app.js",
        content_type: JS,
        bytes: include_bytes!("../static/app.js"),
        summary: "The web client's script (ES module)",
    },
    Asset {
        path: "/assets/console.js",
        content_type: JS,
        bytes: include_bytes!("../static/console.js"),
        summary: "The console's script (ES module)",
    },
    Asset {
        path: "/assets/chart.js",
        content_type: JS,
        bytes: include_bytes!("../static/chart.js"),
        summary: "The console's SVG chart (ES module)",
    },
    Asset {
        path: "/assets/style.css",
        content_type: CSS,
        bytes: include_bytes!("../static/style.css"),
        summary: "The pages' stylesheet",
    },
];

/// An asset ready to send: as it is and gzipped, each with its ETag.
struct Prepared {
    plain_etag: HeaderValue,
    gzip: Vec<u8>,
    gzip_etag: HeaderValue,
}

fn prepared() -> &'static [Prepared] {
    static PREPARED: OnceLock<Vec<Prepared>> = OnceLock::new();
    PREPARED.get_or_init(|| ASSETS.iter().map(prepare).collect())
}

fn prepare(asset: &Asset) -> Prepared {
    let digest = Sha256::digest(asset.bytes);
    let tag: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    // Writing to a Vec cannot fail; should it, the plain bytes are served.
    let gzip = encoder
        .write_all(asset.bytes)
        .and_then(|()| encoder.finish())
        .unwrap_or_default();
    Prepared {
        plain_etag: etag(&format!("\"{tag}\"")),
        gzip,
        gzip_etag: etag(&format!("\"{tag}-gz\"")),
    }
}

fn etag(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// Whether the client accepts gzip (`Accept-Encoding: gzip`, not `q=0`).
fn accepts_gzip(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// Whether `If-None-Match` names `etag` (or is `*`).
fn not_modified(req: &HttpRequest, etag: &HeaderValue) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/").as_bytes() == etag.as_bytes())
}

fn serve(req: &HttpRequest, index: usize) -> HttpResponse {
    let (Some(asset), Some(prepared)) = (ASSETS.get(index), prepared().get(index)) else {
        return HttpResponse::NotFound().finish();
    };
    let gzip = accepts_gzip(req) && !prepared.gzip.is_empty();
    let etag = if gzip {
        &prepared.gzip_etag
    } else {
        &prepared.plain_etag
    };
    let unchanged = not_modified(req, etag);
    let mut res = HttpResponse::build(if unchanged {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    });
    res.insert_header((header::ETAG, etag.clone()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::VARY, "Accept-Encoding"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if asset.content_type == HTML {
        res.insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY));
    }
    if unchanged {
        return res.finish();
    }
    res.insert_header((header::CONTENT_TYPE, asset.content_type));
    if gzip {
        res.insert_header((header::CONTENT_ENCODING, "gzip"))
            .body(prepared.gzip.clone())
    } else {
        res.body(asset.bytes)
    }
}

/// Every page and asset: registered with `service(Pages)`, which routes a
/// GET per asset and adds the same paths to the OpenAPI document (tag
/// `pages`), both from [`ASSETS`].
pub struct Pages;

impl HttpServiceFactory for Pages {
    fn register(self, config: &mut AppService) {
        for (index, asset) in ASSETS.iter().enumerate() {
            web::resource(asset.path)
                .route(web::get().to(move |req: HttpRequest| async move { serve(&req, index) }))
                .register(config);
        }
    }
}

impl OpenApiFactory for Pages {
    fn paths(&self) -> Paths {
        let mut paths = Paths::new();
        for asset in ASSETS {
            let content = asset.content_type.split(';').next().unwrap_or_default();
            let operation = OperationBuilder::new()
                .tag("pages")
                .summary(Some(asset.summary))
                .description(Some(
                    "Served from the binary, gzipped when accepted, with a strong `ETag` \
                     (`If-None-Match` gets 304) and `Cache-Control: no-cache`; HTML pages carry \
                     a Content-Security-Policy without inline script and with \
                     `frame-ancestors 'none'`.",
                ))
                .response(
                    "200",
                    ResponseBuilder::new()
                        .description("The file")
                        .content(content, ContentBuilder::new().build())
                        .build(),
                )
                .response(
                    "304",
                    ResponseBuilder::new()
                        .description("Not modified (`If-None-Match` named the current ETag)")
                        .build(),
                )
                .build();
            paths.add_path_operation(asset.path, vec![HttpMethod::Get], operation);
        }
        paths
    }

    fn schemas(&self, _: &mut Vec<(String, RefOr<Schema>)>) {}
}

#[cfg(test)]
mod tests;
