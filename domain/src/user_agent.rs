//! Comparing user agents the way a person would: by product and major
//! version, not byte for byte.
//!
//! A browser update ("Firefox/130.0" → "Firefox/130.1") or a different OS
//! build in the comment part is the same device family; a switch from
//! Firefox to `curl` is not. Used by the anomaly rule and the risk analysis.

use std::fmt;

/// Product tokens of browsers, most specific first: an Edge user agent also
/// carries `Chrome/…` and `Safari/…`, a Chrome one `Safari/…`.
const BROWSERS: &[&str] = &[
    "Edg",
    "EdgA",
    "EdgiOS",
    "Edge",
    "OPR",
    "Opera",
    "SamsungBrowser",
    "YaBrowser",
    "Vivaldi",
    "Firefox",
    "FxiOS",
    "CriOS",
    "Chrome",
    "Chromium",
];

/// Tokens that every browser sends and that say nothing about the product.
const GENERIC: &[&str] = &[
    "Mozilla",
    "AppleWebKit",
    "Gecko",
    "KHTML",
    "like",
    "Mobile",
    "Version",
    "Safari",
];

/// The product and major version a user agent names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserAgentFamily {
    /// Lower case, so that `Curl/8` and `curl/8` are one family.
    product: String,
    /// The leading digits of the version, when it has any.
    major: Option<String>,
}

impl UserAgentFamily {
    /// The family of a `User-Agent` value. Never fails: text without product
    /// tokens is its own family (compared without case and surrounding
    /// space).
    pub fn of(user_agent: &str) -> Self {
        let tokens = product_tokens(user_agent);
        let find = |name: &str| tokens.iter().find(|t| t.name == name);
        let chosen = BROWSERS
            .iter()
            .find_map(|b| find(b))
            .map(|t| Self::from_token(t.name, t.version))
            // Safari names its version in `Version/17.4`, the `Safari/…`
            // token is the WebKit build.
            .or_else(|| {
                find("Safari")
                    .map(|_| Self::from_token("Safari", find("Version").and_then(|v| v.version)))
            })
            .or_else(|| {
                tokens
                    .iter()
                    .find(|t| !GENERIC.contains(&t.name))
                    .or_else(|| tokens.first())
                    .map(|t| Self::from_token(t.name, t.version))
            });
        chosen.unwrap_or_else(|| Self {
            product: user_agent.trim().to_lowercase(),
            major: None,
        })
    }

    fn from_token(name: &str, version: Option<&str>) -> Self {
        let major = version.and_then(|v| {
            let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
            if digits.is_empty() {
                (!v.is_empty()).then(|| v.to_lowercase())
            } else {
                Some(digits)
            }
        });
        Self {
            product: name.to_lowercase(),
            major,
        }
    }

    pub fn product(&self) -> &str {
        &self.product
    }

    pub fn major(&self) -> Option<&str> {
        self.major.as_deref()
    }
}

impl fmt::Display for UserAgentFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.major {
            Some(major) => write!(f, "{}/{major}", self.product),
            None => f.write_str(&self.product),
        }
    }
}

/// Whether two (possibly absent) user agents belong to different families.
/// No user agent at all is a family of its own: a browser always sends one.
pub fn different_families(a: Option<&str>, b: Option<&str>) -> bool {
    a.map(UserAgentFamily::of) != b.map(UserAgentFamily::of)
}

struct Token<'a> {
    name: &'a str,
    version: Option<&'a str>,
}

/// `name/version` tokens outside parenthesised comments.
fn product_tokens(user_agent: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut depth = 0usize;
    let mut start = None;
    let bytes = user_agent.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'(' => {
                flush(user_agent, &mut start, i, &mut tokens);
                depth += 1;
            }
            b')' => depth = depth.saturating_sub(1),
            b' ' | b'\t' | b',' | b';' => flush(user_agent, &mut start, i, &mut tokens),
            _ if depth == 0 && start.is_none() => start = Some(i),
            _ => {}
        }
    }
    flush(user_agent, &mut start, bytes.len(), &mut tokens);
    tokens
}

fn flush<'a>(text: &'a str, start: &mut Option<usize>, end: usize, out: &mut Vec<Token<'a>>) {
    let Some(s) = start.take() else {
        return;
    };
    // Only ASCII delimiters end a token, so `s..end` are char boundaries.
    let Some(word) = text.get(s..end) else {
        return;
    };
    let (name, version) = match word.split_once('/') {
        Some((n, v)) => (n, Some(v)),
        None => (word, None),
    };
    if !name.is_empty() {
        out.push(Token { name, version });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIREFOX_130_0: &str =
        "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0";
    const FIREFOX_130_1: &str =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:130.1) Gecko/20100101 Firefox/130.1";
    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                          (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36";
    const EDGE: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                        (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36 Edg/128.0.2739.42";
    const SAFARI: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 \
                          (KHTML, like Gecko) Version/17.4 Safari/605.1.15";

    fn family(ua: &str) -> String {
        UserAgentFamily::of(ua).to_string()
    }

    #[test]
    fn browsers_are_named_by_their_most_specific_product() {
        assert_eq!(family(FIREFOX_130_0), "firefox/130");
        assert_eq!(family(CHROME), "chrome/128");
        assert_eq!(family(EDGE), "edg/128");
        assert_eq!(family(SAFARI), "safari/17");
    }

    #[test]
    fn other_clients_are_named_by_their_first_product_token() {
        assert_eq!(family("curl/8.5.0"), "curl/8");
        assert_eq!(family("okhttp/4.12.0"), "okhttp/4");
        assert_eq!(family("MyApp/3.1 (iPhone; iOS 17.4)"), "myapp/3");
        assert_eq!(family("python-requests/2.31"), "python-requests/2");
    }

    #[test]
    fn text_without_product_tokens_is_its_own_family() {
        assert_eq!(family("  Hello World "), "hello");
        assert_eq!(family("(only a comment)"), "(only a comment)");
        assert_eq!(family(""), "");
    }

    #[test]
    fn a_minor_browser_update_is_the_same_family() {
        assert!(!different_families(
            Some(FIREFOX_130_0),
            Some(FIREFOX_130_1)
        ));
        assert!(!different_families(
            Some("Mozilla/5.0 Firefox/130"),
            Some("Mozilla/5.0 (X11) Firefox/130.0")
        ));
    }

    #[test]
    fn another_product_or_major_version_is_another_family() {
        assert!(different_families(Some(FIREFOX_130_0), Some(CHROME)));
        assert!(different_families(Some(CHROME), Some(EDGE)));
        assert!(different_families(
            Some(FIREFOX_130_0),
            Some("Mozilla/5.0 Firefox/131.0")
        ));
        assert!(different_families(Some(FIREFOX_130_0), Some("curl/8.5")));
    }

    #[test]
    fn a_missing_user_agent_differs_from_any_present_one() {
        assert!(different_families(None, Some("curl/8")));
        assert!(!different_families(None, None));
    }

    #[test]
    fn hostile_text_never_panics() {
        for ua in [
            "((((",
            "))))",
            "/",
            "a/",
            "/1",
            "é/ü",
            "Firefox/",
            "\u{0}/\u{0}",
        ] {
            let _ = UserAgentFamily::of(ua);
        }
        assert_eq!(family("Firefox/"), "firefox");
    }
}
