//! The refresh cookie: `HttpOnly; Secure; SameSite=Strict; Path=/auth`.

use std::time::Duration;

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::HttpRequest;

use crate::WebConfig;

const PATH: &str = "/auth";

/// Cookies longer than any refresh token are ignored rather than parsed.
const MAX_COOKIE_VALUE: usize = 256;

/// The refresh cookies a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    None,
    One(String),
    /// Several cookies of our name: one may have been planted (by a sibling
    /// subdomain, say), and which is the client's own cannot be told. The
    /// values are kept only so that logout can end every one of them.
    Several(Vec<String>),
}

/// Every refresh cookie of the request (empty or oversized values count as
/// absent).
pub fn presented(req: &HttpRequest, config: &WebConfig) -> Presented {
    let Ok(cookies) = req.cookies() else {
        return Presented::None;
    };
    let mut values: Vec<String> = cookies
        .iter()
        .filter(|c| c.name() == config.cookie_name)
        .map(|c| c.value())
        .filter(|v| !v.is_empty() && v.len() <= MAX_COOKIE_VALUE)
        .map(str::to_owned)
        .collect();
    match values.len() {
        0 => Presented::None,
        1 => Presented::One(values.remove(0)),
        _ => Presented::Several(values),
    }
}

/// The refresh cookie, when there is exactly one.
pub fn read(req: &HttpRequest, config: &WebConfig) -> Option<String> {
    match presented(req, config) {
        Presented::One(value) => Some(value),
        Presented::None | Presented::Several(_) => None,
    }
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
    fn two_cookies_of_our_name_are_several_not_the_first() {
        let req = actix_web::test::TestRequest::default()
            .insert_header(("Cookie", "refresh_token=a; other=x; refresh_token=b"))
            .to_http_request();
        let config = WebConfig::default();
        assert_eq!(
            presented(&req, &config),
            Presented::Several(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(read(&req, &config), None);
    }

    #[test]
    fn clearing_expires_the_cookie_at_once() {
        let c = clear(&WebConfig::default()).to_string();
        assert!(c.contains("Max-Age=0"), "{c}");
        assert!(c.starts_with("refresh_token=;"), "{c}");
        assert!(c.contains("Path=/auth"));
    }
}
