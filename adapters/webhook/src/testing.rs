//! A webhook receiver for tests: an HTTP server on `127.0.0.1` that checks
//! every delivery's signature and answers as scripted (a status, or no
//! answer for a while), then `200`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;

use crate::WebhookSecret;

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Status(u16),
    /// Holds the request this long before answering 200 (a sender with a
    /// shorter timeout has given up by then).
    Hang(Duration),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    /// Whether the signature verified with the receiver's secret.
    pub verified: bool,
    pub body: Value,
    /// The status it was answered with; 0 for a request held unanswered.
    pub status: u16,
}

#[derive(Default)]
struct State {
    script: VecDeque<Answer>,
    received: Vec<Received>,
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    pub url: String,
    state: Arc<Mutex<State>>,
    server: actix_web::dev::ServerHandle,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.server.stop(false));
    }
}

impl Receiver {
    /// Starts a receiver checking signatures with `secret`, answering
    /// `script` in order, then 200 to everything.
    pub fn start(secret: &str, script: Vec<Answer>) -> Receiver {
        let secret = WebhookSecret::parse(secret).expect("a valid webhook secret");
        let state = Arc::new(Mutex::new(State {
            script: script.into(),
            received: Vec::new(),
        }));
        let shared = Arc::clone(&state);
        let server = HttpServer::new(move || {
            let (state, secret) = (Arc::clone(&shared), secret.clone());
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (state, secret) = (Arc::clone(&state), secret.clone());
                async move { receive(&state, &secret, &req, &body).await }
            }))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            url: format!("http://127.0.0.1:{port}/hooks"),
            state,
            server: handle,
        }
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Waits until `n` requests were answered 2xx, for at most `within`;
    /// returns everything received.
    pub async fn wait_for_delivered(&self, n: usize, within: Duration) -> Vec<Received> {
        let until = Instant::now() + within;
        loop {
            let received = self.received();
            let delivered = received
                .iter()
                .filter(|r| (200..300).contains(&r.status))
                .count();
            if delivered >= n || Instant::now() >= until {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(
    state: &Mutex<State>,
    secret: &WebhookSecret,
    req: &HttpRequest,
    body: &[u8],
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let verified = secret
        .verify(&id, &timestamp, body, &signature, now)
        .is_ok();
    let answer = state
        .lock()
        .unwrap()
        .script
        .pop_front()
        .unwrap_or(Answer::Status(200));
    // A hung request counts as unanswered (status 0): its sender gave up.
    let status = match answer {
        Answer::Status(code) => code,
        Answer::Hang(_) => 0,
    };
    state.lock().unwrap().received.push(Received {
        id,
        timestamp,
        signature,
        verified,
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
        status,
    });
    match answer {
        Answer::Status(code) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap()).finish()
        }
        Answer::Hang(duration) => {
            tokio::time::sleep(duration).await;
            HttpResponse::Ok().finish()
        }
    }
}
