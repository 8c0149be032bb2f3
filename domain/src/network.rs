//! Networks, as the retry and grace rules compare them: an IPv4 /24 or an
//! IPv6 /64 (API.md, "Lost responses"). A client that retries after a lost
//! answer usually keeps its address, or at least its subnet (a NAT pool, a
//! privacy-extension IPv6 address); a thief elsewhere does not.

use std::net::IpAddr;

/// The network an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    V4([u8; 3]),
    V6([u16; 4]),
}

impl Network {
    /// The /24 or /64 of `ip` (an IPv4-mapped IPv6 address counts as its
    /// IPv4 address); `None` when `ip` is not an address.
    pub fn of(ip: &str) -> Option<Self> {
        let ip: IpAddr = ip.trim().parse().ok()?;
        Some(match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                Self::V4([a, b, c])
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                Self::V6([s[0], s[1], s[2], s[3]])
            }
        })
    }
}

/// Whether two (possibly unknown) client addresses are on one network. An
/// address that is unknown or not an address on either side is no evidence
/// of a change, as in the anomaly rule: the server always knows its peer,
/// so only a test or a misconfigured proxy chain meets that case.
pub fn same_network(a: Option<&str>, b: Option<&str>) -> bool {
    match (a.and_then(Network::of), b.and_then(Network::of)) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_addresses_of_one_slash_24_are_one_network() {
        assert!(same_network(Some("198.51.100.7"), Some("198.51.100.250")));
        assert!(!same_network(Some("198.51.100.7"), Some("198.51.101.7")));
    }

    #[test]
    fn ipv6_addresses_of_one_slash_64_are_one_network() {
        assert!(same_network(
            Some("2001:db8:1:2::1"),
            Some("2001:db8:1:2:aaaa:bbbb:cccc:dddd")
        ));
        assert!(!same_network(
            Some("2001:db8:1:2::1"),
            Some("2001:db8:1:3::1")
        ));
    }

    #[test]
    fn an_ipv4_mapped_address_is_its_ipv4_address() {
        assert!(same_network(
            Some("::ffff:198.51.100.7"),
            Some("198.51.100.9")
        ));
        assert!(!same_network(Some("198.51.100.7"), Some("2001:db8::1")));
    }

    #[test]
    fn an_unknown_address_is_no_evidence_of_a_change() {
        assert!(same_network(None, Some("198.51.100.7")));
        assert!(same_network(Some("not an ip"), Some("198.51.100.7")));
    }
}
