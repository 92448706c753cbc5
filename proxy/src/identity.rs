//! Identity towards the upstream (SECURITY.md R-ID): stripping every inbound header that could carry
//! identity or a client address, resolving the client address from the connection (and trusted
//! proxies only), and minting the signed identity assertion the upstream verifies.
//!
//! The assertion contract (claims, `typ`, lifetime) is in ARCHITECTURE.md and pinned by
//! `docs/contracts/identity-assertion.json`, which the backend's tests decode too.

use std::net::IpAddr;

use jsonwebtoken::{EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::config::IdentityConfig;

/// Header names (normalised: lower-case, `_`/`.` → `-`) that are removed from every inbound request,
/// exactly or as a prefix (R-ID-1).
pub const PROTECTED_EXACT: &[&str] = &[
    "x-user-id",
    "x-user-email",
    "x-user-roles",
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-request-id",
];
pub const PROTECTED_PREFIXES: &[&str] = &["x-user-", "x-auth-", "x-identity-", "x-forwarded-"];

/// `typ` of the identity assertion; distinct from access tokens (`at+jwt`).
pub const ASSERTION_TYP: &str = "identity+jwt";

/// Normalises a header name for the protected-set comparison (R-ID-2).
fn normalise(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'_' | b'.' => '-',
            b => char::from(b.to_ascii_lowercase()),
        })
        .collect()
}

/// True when an inbound header with this name must be dropped: protected after normalisation, or
/// containing `_` or `.` at all (R-ID-2; CVE-2025-64484, CVE-2026-39858).
pub fn is_stripped(name: &str) -> bool {
    if name.contains(['_', '.']) {
        return true;
    }
    let n = normalise(name);
    PROTECTED_EXACT.contains(&n.as_str()) || PROTECTED_PREFIXES.iter().any(|p| n.starts_with(p))
}

/// True when a `Connection` option names a header that must not be dropped on the client's say-so
/// (R-ID-3): a protected header, `Host` or `Authorization`.
pub fn connection_option_is_forbidden(option: &str) -> bool {
    let n = normalise(option.trim());
    n == "host" || n == "authorization" || is_stripped(option.trim())
}

/// An IP network from `trusted_proxies`: `10.0.0.0/8`, `::1/128` or a bare address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: prefix length must be 0 to {max}"))?,
        };
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The client address (R-LOGIN-8): the TCP peer, unless the peer is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` hop that is not itself trusted.
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpNet]) -> IpAddr {
    if !trusted.iter().any(|n| n.contains(peer)) {
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
        if !trusted.iter().any(|n| n.contains(ip)) {
            return ip;
        }
    }
    peer
}

/// Claims of the identity assertion (the wire contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssertionClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub email: String,
    pub roles: Vec<String>,
    pub jti: String,
    pub htm: String,
    pub htu: String,
    pub iat: i64,
    pub exp: i64,
}

/// The subject of the proxy's own service assertion, sent with the credential check: the upstream
/// serves that route only to this caller. No user id can take this value (own users are the
/// upstream's ids, external users `<issuer>:<sub>`).
pub const SERVICE_SUBJECT: &str = "edge-proxy";

/// Mints identity assertions with the identity secret (HS256) or the Ed25519 key (EdDSA).
pub struct Asserter {
    key: EncodingKey,
    header: Header,
    issuer: String,
    lifetime: i64,
}

impl Asserter {
    pub fn from_config(cfg: &IdentityConfig) -> Self {
        let mut header = Header::new(cfg.algorithm.jwt());
        header.typ = Some(ASSERTION_TYP.into());
        Self {
            key: cfg.key.encoding(cfg.algorithm),
            header,
            issuer: cfg.issuer.clone(),
            lifetime: i64::try_from(cfg.lifetime.as_secs()).unwrap_or(60),
        }
    }

    /// An assertion for one request to `audience` (the upstream's name).
    #[allow(clippy::too_many_arguments)]
    pub fn mint(
        &self,
        audience: &str,
        sub: &str,
        email: &str,
        roles: &[String],
        jti: &str,
        method: &str,
        path: &str,
        now: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = AssertionClaims {
            iss: self.issuer.clone(),
            aud: audience.to_owned(),
            sub: sub.to_owned(),
            email: email.to_owned(),
            roles: roles.to_vec(),
            jti: jti.to_owned(),
            htm: method.to_owned(),
            htu: path.to_owned(),
            iat: now,
            exp: now + self.lifetime,
        };
        jsonwebtoken::encode(&self.header, &claims, &self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_are_stripped_in_any_spelling() {
        for name in [
            "X-User-Id",
            "x-user-id",
            "X_User_Id",
            "x.user.id",
            "X-USER-EMAIL",
            "x-user-anything",
            "X-Auth-Request-User",
            "X-Identity-Assertion",
            "x_identity_assertion",
            "X-Forwarded-For",
            "x-forwarded-host",
            "Forwarded",
            "X-Real-IP",
            "True-Client-IP",
            "X-Original-URL",
            "x-request-id",
            "some_header",
            "a.b",
        ] {
            assert!(is_stripped(name), "{name} passes");
        }
        for name in [
            "content-type",
            "accept",
            "x-custom",
            "authorization",
            "x-users",
        ] {
            assert!(!is_stripped(name), "{name} stripped");
        }
    }

    #[test]
    fn connection_may_not_drop_identity_host_or_authorization() {
        for opt in ["X-User-Id", "host", " Authorization ", "x_forwarded_for"] {
            assert!(connection_option_is_forbidden(opt), "{opt}");
        }
        assert!(!connection_option_is_forbidden("keep-alive"));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        let trusted = [IpNet::parse("10.0.0.0/8").unwrap()];
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client_ip(peer, &["1.2.3.4"], &trusted), peer);
        let lb: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(
            client_ip(lb, &["1.2.3.4, 198.51.100.7, 10.9.9.9"], &trusted).to_string(),
            "198.51.100.7"
        );
        assert_eq!(client_ip(lb, &[], &trusted), lb);
        assert_eq!(client_ip(lb, &["garbage"], &trusted), lb);
    }

    #[test]
    fn networks_match_by_prefix() {
        let n = IpNet::parse("192.168.0.0/16").unwrap();
        assert!(n.contains("192.168.44.1".parse().unwrap()));
        assert!(!n.contains("192.169.0.1".parse().unwrap()));
        assert!(IpNet::parse("::1")
            .unwrap()
            .contains("::1".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(IpNet::parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn the_contract_fixture_decodes_into_the_claims_the_proxy_mints() {
        let text = include_str!("../../docs/contracts/identity-assertion.json");
        let c: AssertionClaims = serde_json::from_str(text).unwrap();
        assert_eq!(c.exp - c.iat, 60);
        let round = serde_json::to_value(&c).unwrap();
        let fixture: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            round, fixture,
            "the minted claim set differs from the contract"
        );
    }
}
