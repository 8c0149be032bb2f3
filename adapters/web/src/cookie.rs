//! The refresh cookie: `HttpOnly`, `Secure` (unless turned off), with the
//! configured `SameSite` (default `Strict`), `Path` (default `/auth`) and
//! optional `Domain` (default: host-only).

use std::time::Duration;

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::HttpRequest;

use crate::WebConfig;

/// Cookies longer than any refresh token are ignored rather than parsed.
const MAX_COOKIE_VALUE: usize = 256;

/// The refresh cookie's `SameSite` attribute (`TOKENWARDEN_COOKIE_SAMESITE`).
///
/// `Strict` suits pages on the server's own site (same registrable domain,
/// any subdomain or port); `None` is for pages on another site, which then
/// also need `Secure` and their origin in `TOKENWARDEN_ALLOWED_ORIGINS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CookieSameSite {
    #[default]
    Strict,
    Lax,
    None,
}

impl CookieSameSite {
    /// `strict`, `lax` or `none` (any case).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "strict" => Some(Self::Strict),
            "lax" => Some(Self::Lax),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    fn attribute(self) -> SameSite {
        match self {
            Self::Strict => SameSite::Strict,
            Self::Lax => SameSite::Lax,
            Self::None => SameSite::None,
        }
    }
}

/// The refresh cookies a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    None,
    One(String),
    /// Several cookies of our name: one may have been planted (by a sibling
    /// subdomain, say), and which is the client's own cannot be told: refresh
    /// and logout refuse the request without spending or ending any, and
    /// login ends no old session.
    Several,
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
        _ => Presented::Several,
    }
}

/// The refresh cookie, when there is exactly one.
pub fn read(req: &HttpRequest, config: &WebConfig) -> Option<String> {
    match presented(req, config) {
        Presented::One(value) => Some(value),
        Presented::None | Presented::Several => None,
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
    let builder = Cookie::build(config.cookie_name.clone(), value)
        .http_only(true)
        .secure(config.cookie_secure)
        .same_site(config.cookie_same_site.attribute())
        .path(config.cookie_path.clone());
    match &config.cookie_domain {
        Some(domain) => builder.domain(domain.clone()),
        None => builder,
    }
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
        assert!(!c.contains("Domain"), "host-only by default: {c}");
    }

    #[test]
    fn two_cookies_of_our_name_are_several_not_the_first() {
        let req = actix_web::test::TestRequest::default()
            .insert_header(("Cookie", "refresh_token=a; other=x; refresh_token=b"))
            .to_http_request();
        let config = WebConfig::default();
        assert_eq!(presented(&req, &config), Presented::Several);
        assert_eq!(read(&req, &config), None);
    }

    #[test]
    fn clearing_expires_the_cookie_at_once() {
        let c = clear(&WebConfig::default()).to_string();
        assert!(c.contains("Max-Age=0"), "{c}");
        assert!(c.starts_with("refresh_token=;"), "{c}");
        assert!(c.contains("Path=/auth"));
    }

    #[test]
    fn path_domain_and_same_site_follow_the_settings_when_set_and_cleared() {
        let config = WebConfig {
            cookie_path: "/id/auth".to_owned(),
            cookie_domain: Some("example.com".to_owned()),
            cookie_same_site: CookieSameSite::None,
            ..WebConfig::default()
        };
        for c in [
            set(&config, "twr_x", Duration::from_secs(5)).to_string(),
            clear(&config).to_string(),
        ] {
            for part in ["Path=/id/auth", "Domain=example.com", "SameSite=None"] {
                assert!(c.contains(part), "{c} lacks {part}");
            }
        }
    }

    #[test]
    fn same_site_parses_the_three_documented_values_only() {
        assert_eq!(
            CookieSameSite::parse("strict"),
            Some(CookieSameSite::Strict)
        );
        assert_eq!(CookieSameSite::parse(" Lax "), Some(CookieSameSite::Lax));
        assert_eq!(CookieSameSite::parse("NONE"), Some(CookieSameSite::None));
        for bad in ["", "no", "strictly", "none;"] {
            assert_eq!(CookieSameSite::parse(bad), None, "{bad}");
        }
    }
}
