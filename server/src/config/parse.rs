//! Value parsers: each turns the text of one setting into its type, or says
//! in one line why it cannot. The line never repeats a secret; which flag,
//! variable or file key held the text is added by the caller
//! ([`crate::config_file`]), which knows where it came from.
//!
//! Durations are `humantime`'s, networks `ipnet`'s, URLs `url`'s.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;
use web::IpNet;
use webhook::WebhookSecret;

use super::Rate;

/// A comma-separated list (`a, b`); empty items are skipped, so an empty
/// text is an empty list. A TOML array in the settings file arrives joined
/// with commas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct List<T>(pub Vec<T>);

/// A setting that an empty value leaves unset, as if it were not given
/// (`TOKENWARDEN_WEBHOOK_URL=` in an environment file).
#[derive(Debug, Clone, Default)]
pub struct OrEmpty<T>(pub Option<T>);

/// The value of an optional setting: `None` when absent or empty.
pub fn given<T>(value: Option<OrEmpty<T>>) -> Option<T> {
    value.and_then(|v| v.0)
}

const DURATION_HINT: &str = "use 500ms, 2s, 15m, 1h or 7d";

/// `500ms`, `2s`, `15m`, `1h`, `7d`, `0s` (and anything else `humantime`
/// reads, such as `1h 30m`).
pub fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|_| format!("'{text}' is not a duration ({DURATION_HINT})"))
}

/// A [`duration`] longer than zero.
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        d if d.is_zero() => Err(format!("'{text}' must be longer than 0s")),
        d => Ok(d),
    }
}

/// A whole number in `range`.
pub fn whole<T>(range: RangeInclusive<T>) -> impl Fn(&str) -> Result<T, String> + Clone
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Clone + Send + Sync + 'static,
{
    move |text| {
        text.trim()
            .parse::<T>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                format!(
                    "'{text}' is not a whole number from {} to {}",
                    range.start(),
                    range.end()
                )
            })
    }
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`, any case).
pub fn boolean(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("'{text}' is not true or false")),
    }
}

/// `127.0.0.1:8080`, `[::1]:8080`.
pub fn socket(text: &str) -> Result<SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("'{text}' is not an address like 127.0.0.1:8080"))
}

/// Any text but an empty one (surrounding spaces removed).
pub fn non_empty(text: &str) -> Result<String, String> {
    match text.trim() {
        "" => Err("must not be empty".to_owned()),
        t => Ok(t.to_owned()),
    }
}

/// `5/min`: a count of at least 1 per `s`, `min`, `hour` or `day`.
pub fn rate(text: &str) -> Result<Rate, String> {
    let bad = || format!("'{text}' is not a rate (use 5/min, 30/min, 100/hour)");
    let (count, unit) = text.trim().split_once('/').ok_or_else(bad)?;
    let count: u32 = count
        .trim()
        .parse()
        .ok()
        .filter(|c| *c >= 1)
        .ok_or_else(bad)?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3_600),
        "d" | "day" => Duration::from_secs(86_400),
        _ => return Err(bad()),
    };
    Ok(Rate { count, per })
}

/// `sqlite://<file>` or `postgres://…` (`postgresql://…`). Kept secret:
/// the URL may carry the database password, so no message repeats it.
pub fn database_url(text: &str) -> Result<SecretString, String> {
    let url = text.trim();
    let rest = ["sqlite://", "postgres://", "postgresql://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme));
    match rest {
        Some(rest) if !rest.is_empty() => Ok(SecretString::from(url)),
        _ => Err("must start with sqlite:// (a file path) or postgres://".to_owned()),
    }
}

/// `redis://[:password@]host[:port][/db]` or `rediss://…`; the password is
/// never repeated in a message.
pub fn redis_url(text: &str) -> Result<SecretString, String> {
    let text = text.trim();
    let url = Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "redis" | "rediss") {
        return Err("must start with redis:// or rediss://".to_owned());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host (redis://host:6379)".to_owned());
    }
    Ok(SecretString::from(text))
}

/// An absolute http(s) URL without credentials, query or fragment, kept
/// without its trailing `/` so that paths can be appended.
pub fn public_url(text: &str) -> Result<String, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("'{text}' is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "'{text}' is not an http:// or https:// URL with a host"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("'{text}' must not have a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// An origin: `https://app.example.com[:port]`, nothing after the host (a
/// trailing `/` aside). Kept as browsers send it in `Origin`: host in lower
/// case, the scheme's default port left out.
fn origin(text: &str) -> Result<String, String> {
    let bad = || format!("'{text}' is not an origin like https://app.example.com");
    let url = Url::parse(text).map_err(|_| bad())?;
    let bare = url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || !bare {
        return Err(bad());
    }
    Ok(url.origin().ascii_serialization())
}

/// A comma-separated list of [`origin`]s.
pub fn origins(text: &str) -> Result<List<String>, String> {
    items(text).map(origin).collect::<Result<_, _>>().map(List)
}

/// A comma-separated list of IPs and CIDRs (`10.0.0.0/8, 192.168.0.1`).
pub fn ip_nets(text: &str) -> Result<List<IpNet>, String> {
    items(text)
        .map(|item| item.parse::<IpNet>())
        .collect::<Result<_, _>>()
        .map(List)
}

fn items(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// 1 to 64 letters, digits, `_`, `-`, `.`.
pub fn cookie_name(text: &str) -> Result<String, String> {
    let t = text.trim();
    let ok = !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(t.to_owned())
    } else {
        Err(format!(
            "'{text}' is not 1 to 64 characters of letters, digits, '_', '-', '.'"
        ))
    }
}

/// A cookie `Path`: `/` followed by printable ASCII without `;` or `,`.
pub fn cookie_path(text: &str) -> Result<String, String> {
    let t = text.trim();
    let ok = t.starts_with('/')
        && t.len() <= 256
        && t.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b','));
    if ok {
        Ok(t.to_owned())
    } else {
        Err(format!("'{text}' is not a path like /auth"))
    }
}

/// A cookie `Domain`: a host name in lower case (a leading dot is dropped,
/// as browsers do); empty means host-only.
pub fn cookie_domain(text: &str) -> Result<OrEmpty<String>, String> {
    let t = text.trim().trim_start_matches('.');
    if t.is_empty() {
        return Ok(OrEmpty(None));
    }
    let ok = t.len() <= 253
        && t.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(OrEmpty(Some(t.to_ascii_lowercase())))
    } else {
        Err(format!("'{text}' is not a domain like example.com"))
    }
}

/// 1 to 64 characters without spaces or control characters.
pub fn redis_key_prefix(text: &str) -> Result<String, String> {
    let p = text.trim();
    if p.is_empty() || p.len() > 64 || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("'{text}' is not 1 to 64 characters without spaces"));
    }
    Ok(p.to_owned())
}

/// At least 16 characters; empty: unset. Never repeated in a message.
pub fn introspection_token(text: &str) -> Result<OrEmpty<SecretString>, String> {
    match text.trim() {
        "" => Ok(OrEmpty(None)),
        t if t.chars().count() < 16 => Err("must be at least 16 characters".to_owned()),
        t => Ok(OrEmpty(Some(SecretString::from(t)))),
    }
}

/// An http(s) URL with a host; empty: unset.
pub fn webhook_url(text: &str) -> Result<OrEmpty<Url>, String> {
    match text.trim() {
        "" => Ok(OrEmpty(None)),
        t => webhook::parse_url(t)
            .map(|u| OrEmpty(Some(u)))
            .map_err(|e| e.to_string()),
    }
}

/// At least 32 bytes (`whsec_<base64>`: the decoded bytes); empty: unset.
/// Never repeated in a message.
pub fn webhook_secret(text: &str) -> Result<OrEmpty<WebhookSecret>, String> {
    match text.trim() {
        "" => Ok(OrEmpty(None)),
        t => WebhookSecret::parse(t)
            .map(|s| OrEmpty(Some(s)))
            .map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations_take_the_documented_units() {
        let ok = |t: &str| duration(t).unwrap();
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("2s"), Duration::from_secs(2));
        assert_eq!(ok("15m"), Duration::from_secs(900));
        assert_eq!(ok("1h"), Duration::from_secs(3_600));
        assert_eq!(ok("7d"), Duration::from_secs(7 * 86_400));
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok(" 0 "), Duration::ZERO);
        for bad in ["", "5", "m", "5x", "-5s", "99999999999999999999d"] {
            let e = duration(bad).unwrap_err();
            assert!(e.contains("not a duration"), "{bad}: {e}");
        }
        assert!(positive_duration("0s").is_err());
        assert!(positive_duration("1ms").is_ok());
    }

    #[test]
    fn networks_are_cidrs_or_bare_ips() {
        let nets = ip_nets(" 10.0.0.0/8, 192.168.0.1 ,,fd00::/8").unwrap().0;
        assert_eq!(nets.len(), 3);
        assert!(nets[1].contains("192.168.0.1".parse().unwrap()));
        assert!(ip_nets("").unwrap().0.is_empty());
        for bad in ["10.0.0.0/99", "garbage", "10.0.0.0/8,nope"] {
            assert!(ip_nets(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn origins_are_kept_as_browsers_send_them() {
        assert_eq!(
            origins("https://App.Example.com/, http://localhost:3000, https://x.com:443")
                .unwrap()
                .0,
            [
                "https://app.example.com",
                "http://localhost:3000",
                "https://x.com"
            ]
        );
        for bad in [
            "app.example.com",
            "https://x.com/path",
            "ftp://x.com",
            "https://x.com?q",
        ] {
            assert!(origins(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn messages_never_repeat_a_secret() {
        let e = database_url("mysql://tw:s3cret@db/tw").unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
        let e = redis_url("http://:hunter2@cache").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let e = introspection_token("short-secret").unwrap_err();
        assert!(!e.contains("short-secret"), "{e}");
        let e = webhook_secret("short-webhook-secret").unwrap_err();
        assert!(!e.contains("short-webhook-secret"), "{e}");
    }

    #[test]
    fn empty_optional_settings_are_unset() {
        assert!(introspection_token(" ").unwrap().0.is_none());
        assert!(webhook_url("").unwrap().0.is_none());
        assert!(webhook_secret("").unwrap().0.is_none());
        assert!(cookie_domain("").unwrap().0.is_none());
    }
}
