//! The client address (SECURITY.md R-LOGIN-8): the TCP peer, or, behind a trusted proxy, the
//! right-most `X-Forwarded-For` hop that is not itself trusted. Networks are `ipnet` values.

use std::net::IpAddr;

pub(crate) use ipnet::IpNet;

/// Appends the address as text, as `Display` writes it; an IPv4 address (most clients) without
/// the formatting machinery, since every request writes its client into a header and the log.
pub(crate) fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(itoa::Buffer::new().format(*octet));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

/// Parses a `trusted_proxies` entry: `10.0.0.0/8`, `::1/128` or a bare address (a host network).
pub(crate) fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        format!("`{s}` is not an IP or CIDR (prefix length 0 to 32, or 0 to 128 for IPv6)")
    })
}

/// Validates `trusted_proxies`.
pub(crate) fn nets_from_raw(raw: &[String], p: &mut settings::Problems) -> Vec<IpNet> {
    raw.iter()
        .filter_map(|t| p.take(parse_net(t).map_err(|e| format!("trusted_proxies: {e}"))))
        .collect()
}

/// True when `ip` is in one of `nets`; an IPv4-mapped IPv6 address counts as its IPv4 address.
pub(crate) fn trusted(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    nets.iter().any(|n| n.contains(&ip))
}

/// The client address (R-LOGIN-8): the TCP peer, unless the peer is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` hop that is not itself trusted.
pub(crate) fn client_ip(peer: IpAddr, forwarded_for: &[&str], nets: &[IpNet]) -> IpAddr {
    if !trusted(nets, peer) {
        return peer;
    }
    let hops = forwarded_for
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            // An unparsable hop ends the chain we can believe.
            return peer;
        };
        if !trusted(nets, ip) {
            return ip;
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "203.0.113.255",
            "10.20.3.4",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:192.0.2.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut s = String::from("x");
            push_ip(&mut s, ip);
            assert_eq!(s, format!("x{ip}"));
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        let trusted = [parse_net("10.0.0.0/8").unwrap()];
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client_ip(peer, &["1.2.3.4"], &trusted), peer);
        let lb: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(
            client_ip(lb, &["1.2.3.4, 198.51.100.7, 10.9.9.9"], &trusted).to_string(),
            "198.51.100.7"
        );
        assert_eq!(client_ip(lb, &[], &trusted), lb);
        assert_eq!(client_ip(lb, &["garbage"], &trusted), lb);
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(
            client_ip(mapped, &["198.51.100.7"], &trusted).to_string(),
            "198.51.100.7"
        );
    }

    #[test]
    fn networks_match_by_prefix() {
        let has = |net: &str, ip: &str| trusted(&[parse_net(net).unwrap()], ip.parse().unwrap());
        assert!(has("192.168.0.0/16", "192.168.44.1"));
        assert!(!has("192.168.0.0/16", "192.169.0.1"));
        assert!(
            has("192.168.1.7/16", "192.168.44.1"),
            "host bits are ignored"
        );
        assert!(has("::1", "::1"));
        assert!(has("0.0.0.0/0", "8.8.8.8"));
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("nope").is_err());
    }
}
