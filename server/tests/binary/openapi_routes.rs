//! The OpenAPI document against the app as `tokenwarden serve` wires it
//! (`web::api` on a real warden on SQLite, inside the `problems` middleware).
//!
//! That no route exists outside the document is not something a test can
//! find out (actix does not list its routes): it holds by construction.
//! `web::api` registers every route with `utoipa_actix_web`'s
//! `service(handler)`, which adds the handler's operation to the document
//! in the same call, and clippy refuses actix's own `route` and `service`
//! (`disallowed-methods` in `clippy.toml`). What this test checks is the
//! rest: the app serves the document its registrations made, every
//! documented operation is routed (it does not fall through to the default
//! service), and every other method on a documented path is `405` with an
//! `Allow` that names exactly the documented methods.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use actix_http::Request;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::from_fn;
use actix_web::{test as actix_test, App};
use password::Argon2Hasher;
use persistence::testing::TestDatabase;
use serde_json::Value;
use server::metrics::PrometheusMetrics;
use server::operations::readiness_checks;
use server::startup::{api_state, build_warden_with, open_database, open_keys};
use server::Config;
use web::{MetricsSource, OpsState};

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// A concrete path for a documented one: each `{parameter}` becomes `x`,
/// except the Swagger UI's file, which must exist to be answered.
fn concrete(path: &str) -> String {
    if path == "/docs/{file}" {
        return "/docs/swagger-ui.css".to_owned();
    }
    path.split('/')
        .map(|s| if s.starts_with('{') { "x" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// The app as `serve` wires it (the middleware that matters here, and
/// `web::api`), with `/metrics` on this port or not. Binds `$app` and
/// `$config`; the database and keys live until the end of the scope.
macro_rules! served_app {
    ($app:ident, $config:ident, with_metrics: $with_metrics:expr) => {
        let database = TestDatabase::sqlite();
        let keys_dir = tempfile::tempdir().unwrap();
        let mut $config = Config::with_defaults(database.url(), keys_dir.path());
        $config.cookie_name = "tw_refresh".to_owned();
        let (db, keys) = (
            open_database(&$config).unwrap(),
            open_keys(&$config).unwrap(),
        );
        let hasher = Arc::new(Argon2Hasher::new(1));
        let warden = build_warden_with(&$config, &db, &keys, Arc::clone(&hasher)).unwrap();
        let metrics: Option<Arc<dyn MetricsSource>> = $with_metrics.then(|| {
            Arc::new(PrometheusMetrics::new(db.clone(), hasher)) as Arc<dyn MetricsSource>
        });
        let ops = OpsState::new(readiness_checks(&db, None), metrics);
        let state = api_state(&$config, warden, keys);
        let app = App::new().wrap(from_fn(web::hardening::problems));
        let $app = actix_test::init_service(web::api(app, state, ops)).await;
    };
}

async fn call<S>(app: &S, method: &Method, path: &str) -> (u16, Option<String>, Value)
where
    S: Service<Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let req = actix_test::TestRequest::default()
        .method(method.clone())
        .uri(path)
        .to_request();
    let res = actix_test::call_service(app, req).await;
    let status = res.status().as_u16();
    let allow = res
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = serde_json::from_slice(&actix_test::read_body(res).await).unwrap_or_default();
    (status, allow, body)
}

/// `(path, documented methods)` of every path of `doc`.
fn documented(doc: &Value) -> Vec<(String, BTreeSet<String>)> {
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|m| METHODS.iter().any(|k| k.as_str().eq_ignore_ascii_case(m)))
                .map(|m| m.to_ascii_uppercase())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

#[actix_web::test]
async fn the_app_serves_its_registrations_document_and_routes_exactly_its_operations() {
    served_app!(app, config, with_metrics: true);
    let (status, _, served) = call(&app, &Method::GET, "/openapi.json").await;
    assert_eq!(status, 200);
    let made = serde_json::to_value(web::openapi::document(&config.cookie_name, true)).unwrap();
    assert!(
        served == made,
        "the served document is not the one the routes make"
    );
    assert_eq!(
        served["components"]["securitySchemes"]["refresh_cookie"]["name"],
        "tw_refresh"
    );

    let documented = documented(&served);
    assert!(documented.len() > 30, "{documented:?}");
    let mut failures = Vec::new();
    for (path, methods) in &documented {
        let uri = concrete(path);
        for method in METHODS {
            let (status, allow, body) = call(&app, &method, &uri).await;
            if methods.contains(method.as_str()) {
                // The default service answers 404 `not_found`; so does
                // nothing routed here (a 405 would mean another method's
                // route was found instead).
                if (status == 404 && body["code"] == "not_found") || status == 405 {
                    failures.push(format!("{method} {path}: documented, answered {status}"));
                }
            } else {
                let allowed: BTreeSet<String> = allow
                    .as_deref()
                    .unwrap_or_default()
                    .split(", ")
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect();
                if status != 405 || body["code"] != "method_not_allowed" || &allowed != methods {
                    failures.push(format!(
                        "{method} {path}: not documented, answered {status} {} with Allow {allow:?}",
                        body["code"]
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");

    for unknown in [
        "/auth",
        "/auth/nothing",
        "/admin/users/x/y/z",
        "/assets/x.js",
    ] {
        let (status, _, body) = call(&app, &Method::GET, unknown).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("not_found")),
            "{unknown}"
        );
    }
}

#[actix_web::test]
async fn metrics_served_elsewhere_are_neither_routed_nor_documented_on_the_api_port() {
    served_app!(app, config, with_metrics: false);
    let (_, _, served) = call(&app, &Method::GET, "/openapi.json").await;
    assert!(served["paths"]["/metrics"].is_null());
    assert!(served["paths"]["/healthz"].is_object());
    let made = serde_json::to_value(web::openapi::document(&config.cookie_name, false)).unwrap();
    assert!(served == made);
    let (status, _, body) = call(&app, &Method::GET, "/metrics").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
}
