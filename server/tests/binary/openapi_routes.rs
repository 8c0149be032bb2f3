//! The OpenAPI document against the routes the server really registers,
//! wired as `tokenwarden serve` wires them (a real warden on SQLite).
//!
//! Actix does not list its routes, but `ResourceMap` (every registered
//! resource, scopes nested) implements `Debug`: the test reads the tree
//! from there, then asks the app, with every method, which of those paths
//! answer something other than the default service's 404. That is the set
//! of operations served; it must equal the document's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use actix_web::dev::Service as _;
use actix_web::http::Method;
use actix_web::{test as actix_test, App};
use password::Argon2Hasher;
use persistence::testing::TestDatabase;
use serde_json::Value;
use server::metrics::PrometheusMetrics;
use server::operations::readiness_checks;
use server::startup::{api_state, build_warden_with, open_database, open_keys};
use server::Config;
use web::{MetricsSource, OpsState};

// ---- A reader for `{:?}` output -------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Debugged {
    Struct(String, Vec<(String, Debugged)>),
    Tuple(String, Vec<Debugged>),
    List(Vec<Debugged>),
    Map(Vec<(Debugged, Debugged)>),
    Str(String),
    Atom(String),
}

impl Debugged {
    fn field(&self, name: &str) -> Option<&Debugged> {
        match self {
            Self::Struct(_, fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }
}

struct Reader<'a> {
    text: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn peek(&self) -> u8 {
        self.text.get(self.at).copied().unwrap_or(0)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) {
        self.skip_ws();
        assert_eq!(
            self.peek() as char,
            c as char,
            "at {}: {}",
            self.at,
            String::from_utf8_lossy(&self.text[self.at..(self.at + 40).min(self.text.len())])
        );
        self.at += 1;
    }

    /// Whether the next non-blank byte is `c`; consumes it if so.
    fn next_is(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.peek() == c {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn string(&mut self) -> String {
        self.eat(b'"');
        let mut out = Vec::new();
        loop {
            match self.peek() {
                b'"' => break,
                b'\\' => {
                    out.push(self.text[self.at + 1]);
                    self.at += 2;
                }
                c => {
                    out.push(c);
                    self.at += 1;
                }
            }
        }
        self.at += 1;
        String::from_utf8(out).unwrap()
    }

    fn word(&mut self) -> String {
        self.skip_ws();
        let start = self.at;
        while !matches!(
            self.peek(),
            0 | b',' | b')' | b']' | b'}' | b'{' | b'(' | b':'
        ) && !self.peek().is_ascii_whitespace()
        {
            self.at += 1;
        }
        String::from_utf8_lossy(&self.text[start..self.at]).into_owned()
    }

    /// Values up to `close`, separated by commas.
    fn items(&mut self, close: u8) -> Vec<Debugged> {
        let mut items = Vec::new();
        while !self.next_is(close) {
            items.push(self.value());
            self.next_is(b',');
        }
        items
    }

    fn value(&mut self) -> Debugged {
        self.skip_ws();
        match self.peek() {
            b'"' => Debugged::Str(self.string()),
            b'[' => {
                self.at += 1;
                Debugged::List(self.items(b']'))
            }
            b'(' => {
                self.at += 1;
                Debugged::Tuple(String::new(), self.items(b')'))
            }
            b'{' => {
                self.at += 1;
                let mut entries = Vec::new();
                while !self.next_is(b'}') {
                    let key = self.value();
                    self.eat(b':');
                    entries.push((key, self.value()));
                    self.next_is(b',');
                }
                Debugged::Map(entries)
            }
            _ => {
                let name = self.word();
                if self.next_is(b'{') {
                    let mut fields = Vec::new();
                    while !self.next_is(b'}') {
                        let field = self.word();
                        self.eat(b':');
                        fields.push((field, self.value()));
                        self.next_is(b',');
                    }
                    Debugged::Struct(name, fields)
                } else if self.next_is(b'(') {
                    Debugged::Tuple(name, self.items(b')'))
                } else {
                    Debugged::Atom(name)
                }
            }
        }
    }
}

fn read_debug(text: &str) -> Debugged {
    Reader {
        text: text.as_bytes(),
        at: 0,
    }
    .value()
}

/// The full path patterns of every resource in a `ResourceMap` tree.
fn leaf_patterns(map: &Debugged, prefix: &str, out: &mut Vec<String>) {
    let def = map.field("pattern").expect("ResourceMap.pattern");
    let own = match def.field("patterns").expect("ResourceDef.patterns") {
        Debugged::Tuple(kind, items) if kind == "Single" => match &items[0] {
            Debugged::Str(p) => p.clone(),
            other => panic!("unexpected pattern {other:?}"),
        },
        other => panic!("multi-pattern resources are not expected: {other:?}"),
    };
    let full = format!("{prefix}{own}");
    match map.field("nodes").expect("ResourceMap.nodes") {
        Debugged::Tuple(some, children) if some == "Some" => {
            let Debugged::List(children) = &children[0] else {
                panic!("nodes is not a list")
            };
            for child in children {
                leaf_patterns(child, &full, out);
            }
        }
        _ => out.push(full),
    }
}

// ---- Comparing ------------------------------------------------------------

/// `/a/{id}/b` and `/docs/{_:.*}` become `/a/{}/b` and `/docs/{}`.
fn normalise(path: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '{' => {
                if depth == 0 {
                    out.push_str("{}");
                }
                depth += 1;
            }
            '}' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// A concrete path for a pattern: every variable segment becomes `x`.
fn concrete(pattern: &str) -> String {
    normalise(pattern).replace("{}", "x")
}

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// `(METHOD, normalised path)` of every operation the app serves.
/// Also returns the OpenAPI document the app serves.
async fn registered_operations() -> (BTreeSet<(String, String)>, Value) {
    let database = TestDatabase::sqlite();
    let keys = tempfile::tempdir().unwrap();
    let config = Config::with_defaults(database.url(), keys.path());
    let (db, keys) = (open_database(&config).unwrap(), open_keys(&config).unwrap());
    let hasher = Arc::new(Argon2Hasher::new(1));
    let warden = build_warden_with(&config, &db, &keys, Arc::clone(&hasher)).unwrap();
    let metrics: Arc<dyn MetricsSource> = Arc::new(PrometheusMetrics::new(db.clone(), hasher));
    let ops = OpsState::new(
        readiness_checks(&db, None),
        Some(metrics),
        &config.cookie_name,
    );
    let state = api_state(&config, warden, keys);

    let captured: Arc<Mutex<String>> = Arc::default();
    let capture = Arc::clone(&captured);
    let app = actix_test::init_service(
        App::new()
            .wrap_fn(move |req, srv| {
                *capture.lock().unwrap() = format!("{:?}", req.resource_map());
                srv.call(req)
            })
            .configure(web::routes(state, ops)),
    )
    .await;
    actix_test::call_service(&app, actix_test::TestRequest::get().uri("/").to_request()).await;
    let tree = read_debug(&captured.lock().unwrap());
    let mut patterns = Vec::new();
    leaf_patterns(&tree, "", &mut patterns);
    assert!(
        patterns.iter().any(|p| p == "/auth/login"),
        "the ResourceMap reader found no /auth/login in {patterns:?}: has actix changed its Debug output?"
    );

    let mut served = BTreeSet::new();
    for pattern in &patterns {
        for method in METHODS {
            let req = actix_test::TestRequest::default()
                .method(method.clone())
                .uri(&concrete(pattern))
                .to_request();
            let res = actix_test::call_service(&app, req).await;
            let status = res.status();
            let body: Value =
                serde_json::from_slice(&actix_test::read_body(res).await).unwrap_or_default();
            let unrouted = status == 404 && body["code"] == "not_found";
            if !unrouted {
                served.insert((method.to_string(), normalise(pattern)));
            }
        }
    }
    let req = actix_test::TestRequest::get()
        .uri("/openapi.json")
        .to_request();
    let document: Value = actix_test::call_and_read_body_json(&app, req).await;
    (served, document)
}

fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if METHODS
                .iter()
                .any(|m| m.as_str().eq_ignore_ascii_case(method))
            {
                ops.insert((method.to_ascii_uppercase(), normalise(path)));
            }
        }
    }
    ops
}

#[actix_web::test]
async fn every_registered_route_is_documented_and_every_documented_one_registered() {
    let (served, document) = registered_operations().await;
    eprintln!("served operations: {served:?}");
    let documented = documented_operations(&document);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && phantom.is_empty(),
        "served but not in the OpenAPI document: {undocumented:?}\n\
         documented but not served: {phantom:?}\n\
         (add `#[utoipa::path]` to the handler and name it in `paths(...)` in adapters/web/src/openapi.rs)"
    );
    assert!(
        served.contains(&(
            "GET".to_owned(),
            "/admin/users/{}/token-analysis".to_owned()
        )),
        "{served:?}"
    );
}

#[test]
fn the_debug_reader_reads_nested_values() {
    let v = read_debug(r#"A { b: Some([C { d: "x\"}", e: true }]), f: {"k": (Weak)}, g: None }"#);
    assert_eq!(
        v.field("b"),
        Some(&Debugged::Tuple(
            "Some".into(),
            vec![Debugged::List(vec![Debugged::Struct(
                "C".into(),
                vec![
                    ("d".into(), Debugged::Str("x\"}".into())),
                    ("e".into(), Debugged::Atom("true".into()))
                ]
            )])]
        ))
    );
    assert_eq!(v.field("g"), Some(&Debugged::Atom("None".into())));
}
