//! Webhook delivery for Token Warden: every security event, POSTed as JSON
//! to `TOKENWARDEN_WEBHOOK_URL`, signed per Standard Webhooks
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`), at least once,
//! from the durable outbox the storage adapter fills in the event's own
//! transaction. See `docs/webhooks.md`.
//!
//! [`WebhookWorker`] delivers; [`WebhookSecret`] signs (and verifies, for
//! receivers written in Rust and for tests); [`payload::body`] is the JSON.

pub mod metrics;
pub mod payload;
mod signature;
#[cfg(feature = "testing")]
pub mod testing;
mod worker;

pub use signature::{
    SecretError, VerifyError, WebhookSecret, MIN_SECRET_BYTES, TOLERANCE_SECS, WHSEC_PREFIX,
};
pub use worker::{StartError, WebhookConfig, WebhookWorker};

pub use url::Url;

/// Why a webhook URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("not a URL ({0})")]
    Invalid(String),
    #[error("must be an http:// or https:// URL with a host")]
    NotHttp,
}

/// The receiver's URL: `http://` or `https://` with a host. Whether the
/// host answers is the deliveries' business (they retry), not start-up's.
///
/// # Errors
/// [`UrlError`] for anything else.
pub fn parse_url(text: &str) -> Result<Url, UrlError> {
    let url = Url::parse(text.trim()).map_err(|e| UrlError::Invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(UrlError::NotHttp);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_with_a_host_are_accepted() {
        assert!(parse_url("https://hooks.example.com/tokenwarden").is_ok());
        assert!(parse_url(" http://127.0.0.1:9000/ ").is_ok());
        assert_eq!(parse_url("ftp://example.com/"), Err(UrlError::NotHttp));
        assert_eq!(parse_url("file:///etc/passwd"), Err(UrlError::NotHttp));
        assert!(matches!(
            parse_url("example.com/hook"),
            Err(UrlError::Invalid(_))
        ));
    }
}
