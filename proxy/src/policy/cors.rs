//! `CorsPolicy`: pure CORS decisions for one named policy (SECURITY.md R-CORS). The `Origin` header is
//! parsed as an origin (scheme, host, port) before any comparison; anything that does not parse, the
//! literal `null`, and repeated `Origin` headers are "not allowed". Entries are exact origins or
//! `https://*.example.com` (one or more labels in front of `.example.com`, scheme and port exact).
//! The gateway answers preflights itself (never forwarded) and replaces any CORS headers the upstream
//! sent with the policy's.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use http::Method;
use settings::Problems;

use crate::raw::RawCors;

/// Methods a preflight may ask for (R-CORS-3).
pub(crate) const PREFLIGHT_METHODS: &[Method] = &[
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// A serialised origin: `scheme://host[:port]`, lower-case, default ports removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// Parses an origin strictly (RFC 6454 serialisation): no path, query, fragment, userinfo or trailing
    /// slash; `http` or `https`; lower-case host of DNS labels, IPv4 or `[IPv6]`.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let (scheme, rest) = s.split_once("://")?;
        if scheme != "http" && scheme != "https" {
            return None;
        }
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', '\\', ' ']) {
            return None;
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (addr, after) = v6.split_once(']')?;
            addr.parse::<std::net::Ipv6Addr>().ok()?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            (format!("[{addr}]"), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (rest.to_owned(), None),
            }
        };
        let port = match port {
            None => None,
            Some(p)
                if !p.is_empty()
                    && p.bytes().all(|b| b.is_ascii_digit())
                    && !p.starts_with('0') =>
            {
                Some(p.parse::<u16>().ok()?)
            }
            Some(_) => return None,
        };
        if !host.starts_with('[') && !valid_host(&host) {
            return None;
        }
        let default = if scheme == "https" { 443 } else { 80 };
        Some(Self {
            scheme: scheme.to_owned(),
            host,
            port: port.filter(|p| *p != default),
        })
    }
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    Exact(Origin),
    /// `scheme://*.suffix[:port]`: one or more labels, then `.suffix`.
    Subdomains {
        scheme: String,
        suffix: String,
        port: Option<u16>,
    },
}

impl Rule {
    fn parse(s: &str) -> Result<Self, String> {
        if let Some((scheme, rest)) = s.split_once("://*.") {
            let o = Origin::parse(&format!("{scheme}://{rest}"))
                .ok_or_else(|| format!("`{s}` is not `scheme://*.domain[:port]`"))?;
            if o.host.starts_with('[') || !o.host.contains('.') {
                return Err(format!(
                    "`{s}`: a wildcard needs a domain with at least two labels"
                ));
            }
            return Ok(Self::Subdomains {
                scheme: o.scheme,
                suffix: format!(".{}", o.host),
                port: o.port,
            });
        }
        let o = Origin::parse(s).ok_or_else(|| {
            format!("`{s}` is not an origin (`scheme://host[:port]`, lower-case, no path or trailing slash)")
        })?;
        Ok(Self::Exact(o))
    }

    fn matches(&self, o: &Origin) -> bool {
        match self {
            Self::Exact(e) => e == o,
            Self::Subdomains {
                scheme,
                suffix,
                port,
            } => {
                *scheme == o.scheme
                    && *port == o.port
                    && o.host.len() > suffix.len()
                    && o.host.ends_with(suffix.as_str())
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct CorsPolicy {
    pub name: String,
    rules: Vec<Rule>,
    allow_credentials: bool,
    allow_headers: Vec<String>,
    expose_headers: Vec<String>,
    max_age: u32,
}

/// Header names that must never be allowed or exposed cross-origin (R-CORS-5).
fn is_identity_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["x-user-", "x-auth-", "x-identity-"]
        .iter()
        .any(|p| n.starts_with(p))
}

/// What the gateway does with a request on a CORS route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No `Origin`: not a CORS request; still `Vary: Origin`.
    NotCors,
    /// Forward, and answer with these CORS headers.
    Allowed(Vec<(&'static str, String)>),
    /// Forward a safe method without CORS headers (R-CORS-6).
    DisallowedSafe,
    /// Refuse: unsafe method from an origin that is not allowed (403 `origin_not_allowed`).
    RefusedUnsafe,
    /// Answer the preflight 204 with these headers.
    PreflightAllowed(Vec<(&'static str, String)>),
    /// Answer the preflight 403 without any `Access-Control-*` header.
    PreflightRefused,
}

impl CorsPolicy {
    pub fn from_config(
        name: &str,
        origins: &[String],
        allow_credentials: bool,
        allow_headers: &[String],
        expose_headers: &[String],
        max_age: u32,
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut rules = Vec::new();
        for o in origins {
            if o == "*" {
                problems.push(format!(
                    "cors.{name}.allowed_origins: `*` is not allowed; list the origins"
                ));
                continue;
            }
            match Rule::parse(o) {
                Ok(r) => rules.push(r),
                Err(e) => problems.push(format!("cors.{name}.allowed_origins: {e}")),
            }
        }
        for h in allow_headers.iter().chain(expose_headers) {
            if is_identity_header(h) {
                problems.push(format!(
                    "cors.{name}: identity header `{h}` may never be allowed or exposed (R-CORS-5)"
                ));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            name: name.to_owned(),
            rules,
            allow_credentials,
            allow_headers: allow_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            expose_headers: expose_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            max_age,
        })
    }

    /// The origin, if exactly one `Origin` header names an allowed origin.
    fn allowed_origin<'a>(&self, origin: &[&'a str]) -> Option<&'a str> {
        let [one] = origin else { return None };
        let parsed = Origin::parse(one)?;
        self.rules
            .iter()
            .any(|r| r.matches(&parsed))
            .then_some(*one)
    }

    fn response_headers(&self, origin: &str) -> Vec<(&'static str, String)> {
        let mut h = vec![("access-control-allow-origin", origin.to_owned())];
        if self.allow_credentials {
            h.push(("access-control-allow-credentials", "true".to_owned()));
        }
        if !self.expose_headers.is_empty() {
            h.push((
                "access-control-expose-headers",
                self.expose_headers.join(", "),
            ));
        }
        h
    }

    /// Decides a request: `origin` are all `Origin` header values; `preflight` is the
    /// `Access-Control-Request-Method` (and `-Headers`) when the method is `OPTIONS`.
    pub fn decide(
        &self,
        method: &Method,
        origin: &[&str],
        request_method: Option<&str>,
        request_headers: &[&str],
        route_methods: &[Method],
    ) -> Decision {
        if origin.is_empty() {
            return Decision::NotCors;
        }
        let allowed = self.allowed_origin(origin);
        if *method == Method::OPTIONS {
            if let Some(rm) = request_method {
                let Some(origin) = allowed else {
                    return Decision::PreflightRefused;
                };
                let method_ok = Method::from_bytes(rm.trim().as_bytes())
                    .ok()
                    .is_some_and(|m| PREFLIGHT_METHODS.contains(&m) && route_methods.contains(&m));
                let headers_ok = request_headers
                    .iter()
                    .flat_map(|v| v.split(','))
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .all(|h| self.allow_headers.contains(&h));
                if !method_ok || !headers_ok {
                    return Decision::PreflightRefused;
                }
                let mut h = self.response_headers(origin);
                h.push((
                    "access-control-allow-methods",
                    "GET, POST, PUT, PATCH, DELETE".to_owned(),
                ));
                h.push((
                    "access-control-allow-headers",
                    self.allow_headers.join(", "),
                ));
                h.push(("access-control-max-age", self.max_age.to_string()));
                return Decision::PreflightAllowed(h);
            }
        }
        match allowed {
            Some(o) => Decision::Allowed(self.response_headers(o)),
            None if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) => {
                Decision::DisallowedSafe
            }
            None => Decision::RefusedUnsafe,
        }
    }
}

/// The `Access-Control-*` headers an upstream set; on a CORS route they are replaced by the
/// policy's (the policy, not the upstream, decides CORS).
pub(crate) fn upstream_cors_headers(headers: &http::HeaderMap) -> Vec<http::HeaderName> {
    headers
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .cloned()
        .collect()
}

/// What the route's policy says about a request, read from its headers. A value that is not valid
/// UTF-8 counts as an origin that cannot be allowed.
pub(crate) fn decide_request(
    policy: &CorsPolicy,
    method: &Method,
    headers: &http::HeaderMap,
    route_methods: &[Method],
) -> Decision {
    let origins: Vec<&str> = headers
        .get_all(http::header::ORIGIN)
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{0}"))
        .collect();
    let request_method = headers
        .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| v.to_str().ok());
    let request_headers: Vec<&str> = headers
        .get_all(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    policy.decide(
        method,
        &origins,
        request_method,
        &request_headers,
        route_methods,
    )
}

/// Validates `[cors.<name>]` policies, pushing every problem.
pub(crate) fn policies_from_raw(
    raw: &BTreeMap<String, RawCors>,
    p: &mut Problems,
) -> HashMap<String, Arc<CorsPolicy>> {
    let mut cors = HashMap::new();
    for (name, c) in raw {
        match CorsPolicy::from_config(
            name,
            &c.allowed_origins,
            c.allow_credentials,
            &c.allow_headers,
            &c.expose_headers,
            c.max_age_seconds,
        ) {
            Ok(policy) => {
                cors.insert(name.clone(), Arc::new(policy));
            }
            Err(errors) => errors.into_iter().for_each(|e| p.push(e)),
        }
    }
    cors
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(origins: &[&str]) -> CorsPolicy {
        let o: Vec<String> = origins.iter().map(|s| (*s).to_owned()).collect();
        let h = crate::raw::default_cors_headers();
        CorsPolicy::from_config(
            "web",
            &o,
            false,
            &h,
            &[],
            crate::raw::DEFAULT_CORS_MAX_AGE_SECS,
        )
        .unwrap()
    }

    fn allows(p: &CorsPolicy, origin: &str) -> bool {
        matches!(
            p.decide(&Method::POST, &[origin], None, &[], &[Method::POST]),
            Decision::Allowed(_)
        )
    }

    #[test]
    fn exact_and_subdomain_entries_match_only_what_they_say() {
        let p = policy(&[
            "https://app.example.com",
            "https://*.example.org",
            "http://localhost:3000",
        ]);
        for ok in [
            "https://app.example.com",
            "https://a.example.org",
            "https://a.b.example.org",
            "http://localhost:3000",
            "https://app.example.com:443",
        ] {
            assert!(allows(&p, ok), "{ok} refused");
        }
        for bad in [
            "https://app.example.com.evil.net",
            "https://evilapp.example.com",
            "https://example.org",
            "https://evilexample.org",
            "http://a.example.org",
            "https://a.example.org:8443",
            "http://app.example.com",
            "https://app.example.com/",
            "https://user@app.example.com",
            "https://app.example.com:444",
            "null",
            "",
            "https://APP.example.com",
            "http://localhost",
            "http://localhost:03000",
            "https://app.example.com?x",
            "https://a.example.org.",
            "file://x",
        ] {
            assert!(!allows(&p, bad), "{bad} allowed");
        }
    }

    #[test]
    fn repeated_origin_headers_are_never_allowed() {
        let p = policy(&["https://app.example.com"]);
        let d = p.decide(
            &Method::GET,
            &["https://app.example.com", "https://app.example.com"],
            None,
            &[],
            &[Method::GET],
        );
        assert_eq!(d, Decision::DisallowedSafe);
    }

    #[test]
    fn preflights_check_origin_method_and_every_requested_header() {
        let p = policy(&["https://app.example.com"]);
        let routes = [Method::GET, Method::POST];
        let o = ["https://app.example.com"];
        let Decision::PreflightAllowed(h) = p.decide(
            &Method::OPTIONS,
            &o,
            Some("POST"),
            &["content-type, Authorization"],
            &routes,
        ) else {
            panic!("refused")
        };
        assert!(h.contains(&(
            "access-control-allow-origin",
            "https://app.example.com".into()
        )));
        assert!(h.contains(&("access-control-max-age", "600".into())));
        assert!(!h
            .iter()
            .any(|(k, _)| *k == "access-control-allow-credentials"));
        assert_eq!(
            p.decide(&Method::OPTIONS, &o, Some("DELETE"), &[], &routes),
            Decision::PreflightRefused,
            "route lacks DELETE"
        );
        assert_eq!(
            p.decide(&Method::OPTIONS, &o, Some("TRACE"), &[], &routes),
            Decision::PreflightRefused
        );
        assert_eq!(
            p.decide(&Method::OPTIONS, &o, Some("POST"), &["x-user-id"], &routes),
            Decision::PreflightRefused
        );
        assert_eq!(
            p.decide(
                &Method::OPTIONS,
                &["https://evil.example"],
                Some("GET"),
                &[],
                &routes
            ),
            Decision::PreflightRefused
        );
    }

    #[test]
    fn unsafe_methods_from_unknown_origins_are_refused_and_safe_ones_pass_bare() {
        let p = policy(&["https://app.example.com"]);
        assert_eq!(
            p.decide(&Method::DELETE, &["https://evil.example"], None, &[], &[]),
            Decision::RefusedUnsafe
        );
        assert_eq!(
            p.decide(&Method::GET, &["https://evil.example"], None, &[], &[]),
            Decision::DisallowedSafe
        );
        assert_eq!(
            p.decide(&Method::POST, &["null"], None, &[], &[]),
            Decision::RefusedUnsafe
        );
        assert_eq!(
            p.decide(&Method::GET, &[], None, &[], &[]),
            Decision::NotCors
        );
    }

    #[test]
    fn config_refuses_stars_bad_origins_and_identity_headers() {
        let e = CorsPolicy::from_config(
            "w",
            &["*".into(), "https://x.com/".into(), "https://*.com".into()],
            true,
            &["x-user-id".into()],
            &["X-Auth-Token".into()],
            600,
        )
        .unwrap_err();
        assert_eq!(e.len(), 5, "{e:?}");
    }

    proptest! {
        /// A disallowed origin is never echoed, whatever its shape.
        #[test]
        fn an_unlisted_origin_is_never_reflected(host in "[a-z0-9.-]{1,30}", scheme in "(http|https|ftp)") {
            let p = policy(&["https://app.example.com", "https://*.example.org"]);
            let origin = format!("{scheme}://{host}");
            let listed = origin == "https://app.example.com"
                || (origin.starts_with("https://") && host.ends_with(".example.org") && host.len() > ".example.org".len()
                    && Origin::parse(&origin).is_some());
            let d = p.decide(&Method::POST, &[origin.as_str()], None, &[], &[Method::POST]);
            if let Decision::Allowed(h) = &d {
                prop_assert!(listed, "{origin} allowed");
                prop_assert_eq!(&h[0].1, &origin);
            } else {
                prop_assert!(!listed, "{} refused", origin);
            }
        }
    }
}
