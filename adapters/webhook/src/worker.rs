//! The delivery worker: claims due rows of the outbox, POSTs them, and
//! records what happened. Runs beside the HTTP server on the same runtime
//! and never on a request's path: requests only insert outbox rows.
//!
//! * **At least once.** A row leaves the outbox only after a 2xx (or when
//!   given up). A process that dies mid-delivery leaves its row claimed
//!   until the lease ends; then any instance sends it again.
//! * **One attempt at a time per event.** The claim (a lease in the
//!   database) keeps every other worker, here or in another instance, off
//!   the row until the attempt's result is written or the lease ends; the
//!   lease outlasts the attempt's timeout by far.
//! * **Retries** follow [`RetryPolicy`]: exponential backoff with jitter,
//!   for 24 hours after the event.

use std::sync::Arc;
use std::time::Duration;

use application::ports::{Clock, Delivery, StoreError, WebhookOutbox};
use application::webhooks::{AfterFailure, RetryPolicy};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::metrics;
use crate::payload;
use crate::signature::WebhookSecret;

/// Where and how deliveries go.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// `TOKENWARDEN_WEBHOOK_URL`: http or https.
    pub url: Url,
    /// `TOKENWARDEN_WEBHOOK_SECRET`.
    pub secret: WebhookSecret,
    /// The longest one attempt may take, connecting included; a receiver
    /// that takes longer has failed this attempt.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// How often the outbox is looked at when nothing was due.
    pub poll_interval: Duration,
    /// How long a claim keeps other workers off a row: longer than any
    /// attempt (`timeout`), so that only a dead worker's claim runs out.
    pub lease: Duration,
    /// Rows claimed (and sent concurrently) at a time.
    pub batch: u32,
}

impl WebhookConfig {
    /// The defaults: 5 s per attempt, the default [`RetryPolicy`], a poll
    /// every second, a one-minute lease, 16 deliveries at a time.
    pub fn new(url: Url, secret: WebhookSecret) -> Self {
        Self {
            url,
            secret,
            timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            batch: 16,
        }
    }
}

/// The worker could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the webhook HTTP client: {0}")]
pub struct StartError(String);

/// A running worker. Dropping it stops it at once (a delivery under way is
/// abandoned, and sent again when its lease ends); [`WebhookWorker::stop`]
/// lets the deliveries under way finish first.
pub struct WebhookWorker {
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
    /// The longest a graceful stop waits.
    grace: Duration,
}

impl Drop for WebhookWorker {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl WebhookWorker {
    /// Starts the worker on the current Tokio runtime. It stops when
    /// `cancel` is cancelled (or the worker dropped).
    ///
    /// # Errors
    /// [`StartError`] when the HTTP client cannot be built.
    pub fn spawn(
        config: WebhookConfig,
        outbox: Arc<dyn WebhookOutbox>,
        clock: Arc<dyn Clock>,
        cancel: CancellationToken,
    ) -> Result<Self, StartError> {
        let client = http_client(&config)?;
        let grace = config.timeout + Duration::from_secs(1);
        let worker = Arc::new(Worker {
            config,
            client,
            outbox,
            clock,
        });
        let task = tokio::spawn(worker.run(cancel.clone()));
        Ok(Self {
            cancel,
            task: Some(task),
            grace,
        })
    }

    /// Stops taking new rows, lets the deliveries under way end (they are
    /// bounded by the attempt timeout) and returns.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(self.grace, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// The client of every attempt: `https` over rustls with the system's CA
/// store, redirects not followed.
fn http_client(config: &WebhookConfig) -> Result<reqwest::Client, StartError> {
    reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        // A redirect is not an acknowledgement, and following it would send
        // the event somewhere the operator did not name.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tokenwarden-webhook/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| StartError(e.to_string()))
}

struct Worker {
    config: WebhookConfig,
    client: reqwest::Client,
    outbox: Arc<dyn WebhookOutbox>,
    clock: Arc<dyn Clock>,
}

/// How often the pending gauge is refreshed at most.
const COUNT_EVERY: Duration = Duration::from_secs(5);

/// Runs a port call on the blocking pool (the ports block).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError(format!("webhook outbox task: {e}")))?
}

/// What one attempt came to.
enum Attempt {
    Delivered(reqwest::StatusCode),
    Failed(String),
}

impl Worker {
    async fn run(self: Arc<Self>, cancel: CancellationToken) {
        tracing::info!(url = %redacted(&self.config.url), "webhook delivery started");
        let mut counted_at: Option<tokio::time::Instant> = None;
        while !cancel.is_cancelled() {
            let full = match self.claim().await {
                Ok(batch) => {
                    let full = batch.len() >= self.config.batch as usize;
                    let any = !batch.is_empty();
                    // Deliveries under way finish even when a stop comes:
                    // each is bounded by the attempt timeout.
                    futures_util::future::join_all(batch.into_iter().map(|d| self.deliver(d)))
                        .await;
                    if any || counted_at.is_none_or(|at| at.elapsed() >= COUNT_EVERY) {
                        self.count_pending().await;
                        counted_at = Some(tokio::time::Instant::now());
                    }
                    full
                }
                Err(error) => {
                    tracing::warn!(%error, "webhook outbox unavailable; retrying");
                    false
                }
            };
            if !full {
                tokio::select! {
                    () = cancel.cancelled() => {}
                    () = tokio::time::sleep(self.config.poll_interval) => {}
                }
            }
        }
        tracing::info!("webhook delivery stopped");
    }

    async fn claim(&self) -> Result<Vec<Delivery>, StoreError> {
        let (outbox, now) = (Arc::clone(&self.outbox), self.clock.now());
        let (lease, batch) = (self.config.lease, self.config.batch);
        blocking(move || outbox.claim_due(now, lease, batch)).await
    }

    async fn count_pending(&self) {
        let outbox = Arc::clone(&self.outbox);
        match blocking(move || outbox.pending()).await {
            Ok(n) => metrics::pending(n),
            Err(error) => tracing::debug!(%error, "webhook outbox not counted"),
        }
    }

    /// One attempt of `delivery`, and its result written to the outbox.
    async fn deliver(&self, delivery: Delivery) {
        let event = &delivery.event;
        let claim = delivery.claim();
        let started = self.clock.now();
        if self.config.retry.expired(event.created_at, started) {
            // Found after its last attempt was due (webhooks were off, or
            // no instance ran for a day): sending it now would surprise.
            tracing::warn!(
                event_id = event.id,
                kind = %event.kind,
                "webhook delivery given up unsent: the event is older than the retry period"
            );
            self.finish(claim, false).await;
            return;
        }
        match self.attempt(&delivery).await {
            Attempt::Delivered(status) => {
                tracing::debug!(event_id = event.id, attempt = delivery.attempt, %status, "webhook delivered");
                self.finish(claim, true).await;
            }
            Attempt::Failed(error) => {
                metrics::attempt_failed();
                let now = self.clock.now();
                let jitter: f64 = rand::random();
                match self.config.retry.after_failure(
                    delivery.attempt,
                    event.created_at,
                    now,
                    jitter,
                ) {
                    AfterFailure::RetryAt(at) => {
                        tracing::info!(
                            event_id = event.id,
                            attempt = delivery.attempt,
                            %error,
                            retry_in_ms = now.until(at).as_millis() as u64,
                            "webhook attempt failed; will retry"
                        );
                        let outbox = Arc::clone(&self.outbox);
                        let kept = blocking(move || outbox.retry_at(claim, at, &error)).await;
                        if let Err(error) = kept {
                            tracing::warn!(event_id = event.id, %error, "webhook retry not scheduled; the lease will bring it back");
                        }
                    }
                    AfterFailure::GiveUp => {
                        tracing::warn!(
                            event_id = event.id,
                            kind = %event.kind,
                            attempts = delivery.attempt,
                            %error,
                            "webhook delivery given up after the retry period"
                        );
                        self.finish(claim, false).await;
                    }
                }
            }
        }
    }

    async fn attempt(&self, delivery: &Delivery) -> Attempt {
        let event = &delivery.event;
        let id = event.id.to_string();
        let body = payload::body(event);
        let timestamp = self.clock.now().as_secs();
        let signature = self.config.secret.sign(&id, timestamp, &body);
        let sent = self
            .client
            .post(self.config.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => Attempt::Delivered(response.status()),
            Ok(response) => Attempt::Failed(format!("HTTP {}", response.status())),
            // Without the URL: it may carry credentials.
            Err(e) if e.is_timeout() => {
                Attempt::Failed(format!("no answer within {:?}", self.config.timeout))
            }
            Err(e) => Attempt::Failed(error_chain(&e.without_url())),
        }
    }

    /// Removes the row of a delivery that ended: `delivered`, or given up.
    async fn finish(&self, claim: application::ports::Claim, delivered: bool) {
        if delivered {
            metrics::delivered();
        } else {
            metrics::failed();
        }
        let outbox = Arc::clone(&self.outbox);
        if let Err(error) = blocking(move || outbox.finish(claim)).await {
            // At least once: the row comes back when the lease ends.
            tracing::warn!(event_id = claim.event_id, %error, "webhook outbox row not removed; it will be sent again");
        }
    }
}

/// An error and its causes, one line (reqwest's own `Display` says only
/// "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The URL without credentials, for logs.
fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_password(None);
    let _ = url.set_username("");
    url.to_string()
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt as _;

    use super::*;

    #[tokio::test]
    async fn an_https_receiver_is_spoken_to_in_tls() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = crate::parse_url(&format!("https://127.0.0.1:{port}/hooks")).unwrap();
        let secret = WebhookSecret::parse(&"k".repeat(32)).unwrap();
        let client = http_client(&WebhookConfig::new(url.clone(), secret)).unwrap();
        let sent = tokio::spawn(async move { client.post(url).body("{}").send().await });
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut first = [0_u8; 1];
        socket.read_exact(&mut first).await.unwrap();
        // A TLS handshake record, not an HTTP request line.
        assert_eq!(first[0], 0x16);
        drop(socket);
        assert!(sent.await.unwrap().is_err());
    }
}
