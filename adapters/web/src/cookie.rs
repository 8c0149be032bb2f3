//! The refresh cookie: `HttpOnly; Secure; SameSite=Strict; Path=/auth`.

use std::time::Duration;

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::HttpRequest;

use crate::WebConfig;

const PATH: &str = "/auth";

/// Cookies longer than any refresh token are ignored rather than parsed.
const MAX_COOKIE_VALUE: usize = 256;

pub fn read(req: &HttpRequest, config: &WebConfig) -> Option<String> {
    let c = req.cookie(&config.cookie_name)?;
    let value = c.value();
    (!value.is_empty() && value.len() <= MAX_COOKIE_VALUE).then(|| value.to_owned())
}

pub fn set(config: &WebConfig, token: &str, max_age: Duration) -> Cookie<'static> {
    let secs = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    base(config, token.to_owned())
        .max_age(CookieDuration::seconds(secs))
        .finish()
}

pub fn clear(config: &WebConfig) -> Cookie<'static> {
    let mut c = base(config, String::new()).finish();
    c.make_removal();
    c
}

fn base(config: &WebConfig, value: String) -> actix_web::cookie::CookieBuilder<'static> {
    Cookie::build(config.cookie_name.clone(), value)
        .http_only(true)
        .secure(config.cookie_secure)
        .same_site(SameSite::Strict)
        .path(PATH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_carries_every_contract_attribute() {
        let c = set(&WebConfig::default(), "twr_x", Duration::from_secs(90)).to_string();
        for part in [
            "refresh_token=twr_x",
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/auth",
            "Max-Age=90",
        ] {
            assert!(c.contains(part), "{c} lacks {part}");
        }
    }

    #[test]
    fn clearing_expires_the_cookie_at_once() {
        let c = clear(&WebConfig::default()).to_string();
        assert!(c.contains("Max-Age=0"), "{c}");
        assert!(c.starts_with("refresh_token=;"), "{c}");
        assert!(c.contains("Path=/auth"));
    }
}
