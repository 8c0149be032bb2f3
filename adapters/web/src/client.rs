//! What the network tells about the caller: client IP (honouring
//! `Forwarded` and `X-Forwarded-*` only from trusted proxies), user agent
//! (cleaned for display), origin.

use std::net::IpAddr;
use std::str::FromStr;

use actix_web::http::header;
use actix_web::HttpRequest;

use application::ports::ClientInfo;

use crate::error::ApiError;
use crate::WebConfig;

/// User agents are truncated to this many bytes before they are stored.
pub const MAX_USER_AGENT_BYTES: usize = 512;

/// An IP network in CIDR notation (a bare IP is a /32 or /128), as
/// `ipnet` reads it; an IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`)
/// is the IPv4 network it carries, as addresses are (see [`canonical`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet(ipnet::IpNet);

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical(ip))
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let net = match s.parse::<ipnet::IpNet>() {
            Ok(net) => net,
            Err(_) if !s.contains('/') => IpAddr::from_str(s)
                .map(ipnet::IpNet::from)
                .map_err(|_| format!("'{s}' is not an IP or CIDR"))?,
            Err(_) => {
                return Err(format!(
                    "'{s}' is not an IP or CIDR (bad address or prefix length)"
                ))
            }
        };
        Ok(Self(match net {
            ipnet::IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
                Some(v4) => {
                    ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, ipnet::IpNet::V4)
                }
                None => net,
            },
            _ => net,
        }))
    }
}

/// IPv4-mapped IPv6 addresses count as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether the peer of `req` is one of `trusted`: only then are forwarded
/// headers (`Forwarded`, `X-Forwarded-For`, `-Host`, `-Proto`) believed.
fn peer_is_trusted(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = canonical(req.peer_addr()?.ip());
    trusted.iter().any(|n| n.contains(peer)).then_some(peer)
}

/// One node of a forwarding chain as an IP: `ip`, `ip:port`, `[ipv6]`,
/// `[ipv6]:port`, optionally quoted; `None` for anything else (`unknown`,
/// obfuscated names, garbage), which the caller skips.
pub fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"').trim();
    if let Ok(ip) = IpAddr::from_str(text) {
        return Some(canonical(ip));
    }
    if let Ok(addr) = std::net::SocketAddr::from_str(text) {
        return Some(canonical(addr.ip()));
    }
    let bracketed = text.strip_prefix('[')?.strip_suffix(']')?;
    std::net::Ipv6Addr::from_str(bracketed)
        .ok()
        .map(|ip| canonical(IpAddr::V6(ip)))
}

/// The `(name, value)` pairs of every element of the `Forwarded` headers
/// (RFC 7239), in order; names in lower case.
fn forwarded_pairs(req: &HttpRequest) -> Vec<Vec<(String, String)>> {
    let mut elements = Vec::new();
    for value in req.headers().get_all(header::FORWARDED) {
        let Ok(value) = value.to_str() else { continue };
        for element in value.split(',') {
            let pairs = element
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| {
                    (
                        k.trim().to_ascii_lowercase(),
                        v.trim().trim_matches('"').to_owned(),
                    )
                })
                .collect();
            elements.push(pairs);
        }
    }
    elements
}

/// The addresses a trusted proxy reports, in header order (the left-most
/// is the farthest from us). `Forwarded` wins over `X-Forwarded-For`
/// when a request carries both. Entries that are not addresses are skipped.
fn forwarded_chain(req: &HttpRequest) -> Vec<IpAddr> {
    let forwarded: Vec<IpAddr> = forwarded_pairs(req)
        .iter()
        .flat_map(|pairs| pairs.iter().filter(|(k, _)| k == "for"))
        .filter_map(|(_, v)| parse_node(v))
        .collect();
    if !forwarded.is_empty() {
        return forwarded;
    }
    req.headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(parse_node)
        .collect()
}

/// The client IP: the socket peer, unless the peer is a trusted proxy; then
/// the right-most forwarded address that is not itself trusted (the peer
/// when there is none).
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = canonical(req.peer_addr()?.ip());
    if peer_is_trusted(req, trusted).is_none() {
        return Some(peer);
    }
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    Some(
        forwarded_chain(req)
            .into_iter()
            .rev()
            .find(|ip| !is_trusted(*ip))
            .unwrap_or(peer),
    )
}

/// Characters never stored for display: control characters, the
/// bidirectional embedding, override and isolate controls (U+202A–U+202E,
/// U+2066–U+2069) and the line and paragraph separators. They let a client
/// make an admin view show something else than what was sent (`U+202E`
/// reverses the text after it).
pub fn is_display_hazard(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}'
        )
}

/// The user agent as stored for display: display hazards removed (see
/// [`is_display_hazard`]), truncated to [`MAX_USER_AGENT_BYTES`] on a
/// character boundary.
pub fn user_agent(req: &HttpRequest) -> Option<String> {
    let raw = req.headers().get(header::USER_AGENT)?;
    let mut text = String::new();
    for c in String::from_utf8_lossy(raw.as_bytes()).chars() {
        if is_display_hazard(c) {
            continue;
        }
        if text.len() + c.len_utf8() > MAX_USER_AGENT_BYTES {
            break;
        }
        text.push(c);
    }
    Some(text)
}

pub fn client_info(req: &HttpRequest, config: &WebConfig) -> ClientInfo {
    ClientInfo {
        ip: client_ip(req, &config.trusted_proxies).map(|ip| ip.to_string()),
        user_agent: user_agent(req),
    }
}

/// The origin (`scheme://host[:port]`) the client addressed: from the
/// forwarded headers only when the peer is a trusted proxy, from `Host` and
/// the connection otherwise.
pub fn own_origin(req: &HttpRequest, trusted: &[IpNet]) -> String {
    let header_text = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let direct_scheme = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    let direct_host = header_text(header::HOST.as_str())
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_else(|| req.app_config().host().to_owned());
    if peer_is_trusted(req, trusted).is_none() {
        return format!("{direct_scheme}://{direct_host}");
    }
    // The proxy nearest to us appends last, but `Host`/`proto` describe
    // what the client addressed at the first proxy: the first element.
    let first = forwarded_pairs(req).into_iter().next().unwrap_or_default();
    let from_forwarded = |name: &str| {
        first
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let scheme = from_forwarded("proto")
        .or_else(|| header_text("x-forwarded-proto"))
        .unwrap_or_else(|| direct_scheme.to_owned());
    let host = from_forwarded("host")
        .or_else(|| header_text("x-forwarded-host"))
        .unwrap_or(direct_host);
    format!("{scheme}://{host}")
}

/// CSRF defence for cookie-carrying POSTs: no `Origin` (a non-browser
/// client) passes; otherwise it must be the server's own origin as the
/// client addressed it (see [`own_origin`]), or one of the configured
/// allowed origins.
pub fn check_origin(req: &HttpRequest, config: &WebConfig) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin
        .to_str()
        .map_err(|_| ApiError::ForbiddenOrigin)?
        .trim_end_matches('/');
    let own = own_origin(req, &config.trusted_proxies);
    if origin.eq_ignore_ascii_case(&own)
        || config
            .allowed_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
    {
        Ok(())
    } else {
        Err(ApiError::ForbiddenOrigin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use std::net::SocketAddr;

    fn req(peer: &str, xff: Option<&str>) -> HttpRequest {
        let mut r = TestRequest::default().peer_addr(peer.parse::<SocketAddr>().unwrap());
        if let Some(x) = xff {
            r = r.insert_header(("X-Forwarded-For", x));
        }
        r.to_http_request()
    }

    #[test]
    fn cidrs_contain_their_addresses() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.0.0.1".parse().unwrap()));
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!("1.2.3.4/33".parse::<IpNet>().is_err());
        assert!("garbage".parse::<IpNet>().is_err());
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let one: IpNet = " 192.168.0.1 ".parse().unwrap();
        assert!(one.contains("192.168.0.1".parse().unwrap()));
        assert!(!one.contains("192.168.0.2".parse().unwrap()));
        let mapped: IpNet = "::ffff:10.0.0.0/104".parse().unwrap();
        assert!(mapped.contains("10.9.9.9".parse().unwrap()));
        assert!(!mapped.contains("11.0.0.1".parse().unwrap()));
        assert!("::1/129".parse::<IpNet>().is_err());
    }

    #[test]
    fn a_forwarded_header_from_an_untrusted_peer_changes_nothing() {
        let r = req("203.0.113.9:4000", Some("1.1.1.1"));
        assert_eq!(client_ip(&r, &[]), Some("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_entry_counts() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let r = req("10.0.0.1:4000", Some("6.6.6.6, 198.51.100.7, 10.0.0.2"));
        assert_eq!(
            client_ip(&r, &trusted),
            Some("198.51.100.7".parse().unwrap())
        );
        let garbled = req("10.0.0.1:4000", Some("not-an-ip"));
        assert_eq!(
            client_ip(&garbled, &trusted),
            Some("10.0.0.1".parse().unwrap()),
            "nothing usable: the peer"
        );
    }

    #[test]
    fn garbage_entries_are_skipped_and_ports_stripped() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let r = req("10.0.0.1:4000", Some("6.6.6.6, garbage, 198.51.100.7:5555"));
        assert_eq!(
            client_ip(&r, &trusted),
            Some("198.51.100.7".parse().unwrap())
        );
        let r = req("10.0.0.1:4000", Some("[2001:db8::7]:443, ,;x"));
        assert_eq!(
            client_ip(&r, &trusted),
            Some("2001:db8::7".parse().unwrap())
        );
        assert_eq!(parse_node("\"[2001:db8::1]\""), "2001:db8::1".parse().ok());
        assert_eq!(parse_node("unknown"), None);
        assert_eq!(parse_node("_hidden"), None);
    }

    #[test]
    fn the_forwarded_header_is_read_like_x_forwarded_for() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let r = TestRequest::default()
            .peer_addr("10.0.0.1:4000".parse().unwrap())
            .insert_header((
                "Forwarded",
                "for=192.0.2.60;proto=https, for=\"[2001:db8:cafe::17]:4711\"",
            ))
            .to_http_request();
        assert_eq!(
            client_ip(&r, &trusted),
            Some("2001:db8:cafe::17".parse().unwrap())
        );
        let untrusted = TestRequest::default()
            .peer_addr("203.0.113.9:4000".parse().unwrap())
            .insert_header(("Forwarded", "for=192.0.2.60"))
            .to_http_request();
        assert_eq!(
            client_ip(&untrusted, &trusted),
            Some("203.0.113.9".parse().unwrap())
        );
    }

    fn origin_req(peer: &str) -> HttpRequest {
        TestRequest::default()
            .peer_addr(peer.parse().unwrap())
            .insert_header(("Host", "auth.example:8080"))
            .insert_header(("X-Forwarded-Host", "evil.example"))
            .insert_header(("X-Forwarded-Proto", "https"))
            .to_http_request()
    }

    #[test]
    fn forwarded_host_and_proto_count_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            own_origin(&origin_req("203.0.113.9:1"), &trusted),
            "http://auth.example:8080"
        );
        assert_eq!(
            own_origin(&origin_req("10.0.0.1:1"), &trusted),
            "https://evil.example"
        );
    }

    #[test]
    fn display_hazards_are_removed_from_user_agents() {
        let r = TestRequest::default()
            .insert_header(("User-Agent", "curl/8.0 \u{202E}gpj.exe\u{2066}x\u{2028}y"))
            .to_http_request();
        assert_eq!(user_agent(&r).unwrap(), "curl/8.0 gpj.exexy");
        assert!(is_display_hazard('\u{202A}') && is_display_hazard('\u{2069}'));
        assert!(is_display_hazard('\u{7}') && !is_display_hazard('é'));
    }

    #[test]
    fn user_agents_are_truncated_on_a_character_boundary() {
        let long = "é".repeat(400);
        let r = TestRequest::default()
            .insert_header(("User-Agent", long))
            .to_http_request();
        let ua = user_agent(&r).unwrap();
        assert!(ua.len() <= MAX_USER_AGENT_BYTES);
        assert!(ua.chars().all(|c| c == 'é'));
    }
}
