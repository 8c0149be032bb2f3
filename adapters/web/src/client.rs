//! What the network tells about the caller: client IP (honouring
//! `X-Forwarded-For` only from trusted proxies), user agent, origin.

use std::net::IpAddr;
use std::str::FromStr;

use actix_web::http::header;
use actix_web::HttpRequest;

use application::ports::ClientInfo;

use crate::error::ApiError;
use crate::WebConfig;

/// User agents are truncated to this many bytes before they are stored.
pub const MAX_USER_AGENT_BYTES: usize = 512;

/// An IP network in CIDR notation (a bare IP is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr =
            canonical(IpAddr::from_str(addr).map_err(|_| format!("'{s}' is not an IP or CIDR"))?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{s}' has a bad prefix length"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

/// IPv4-mapped IPv6 addresses count as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client IP: the socket peer, unless the peer is a trusted proxy; then
/// the right-most `X-Forwarded-For` entry that is not itself trusted.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = canonical(req.peer_addr()?.ip());
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut chain: Vec<IpAddr> = Vec::new();
    for value in req.headers().get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else {
            return Some(peer);
        };
        for entry in value.split(',') {
            match IpAddr::from_str(entry.trim()) {
                Ok(ip) => chain.push(canonical(ip)),
                // A garbled chain cannot be trusted past this point.
                Err(_) => return Some(peer),
            }
        }
    }
    Some(
        chain
            .into_iter()
            .rev()
            .find(|ip| !is_trusted(*ip))
            .unwrap_or(peer),
    )
}

pub fn user_agent(req: &HttpRequest) -> Option<String> {
    let raw = req.headers().get(header::USER_AGENT)?;
    let text = String::from_utf8_lossy(raw.as_bytes());
    let mut end = text.len().min(MAX_USER_AGENT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(text[..end].to_owned())
}

pub fn client_info(req: &HttpRequest, config: &WebConfig) -> ClientInfo {
    ClientInfo {
        ip: client_ip(req, &config.trusted_proxies).map(|ip| ip.to_string()),
        user_agent: user_agent(req),
    }
}

/// CSRF defence for cookie-carrying POSTs: no `Origin` (a non-browser
/// client) passes; otherwise it must be the server's own origin as the
/// client addressed it, or one of the configured allowed origins.
pub fn check_origin(req: &HttpRequest, config: &WebConfig) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin
        .to_str()
        .map_err(|_| ApiError::ForbiddenOrigin)?
        .trim_end_matches('/');
    let info = req.connection_info();
    let own = format!("{}://{}", info.scheme(), info.host());
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
            Some("10.0.0.1".parse().unwrap())
        );
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
