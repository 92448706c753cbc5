//! Inbound identity headers (SECURITY.md R-ID-1 to R-ID-3): which header names a client may never
//! send upstream, in any spelling, and which `Connection` options it may not use to drop a header.
//! [`strip_plan`] turns a request's headers into the names to remove, in one pass.

use http::HeaderMap;

use crate::error::ProxyError;

/// Header names (normalised: lower-case, `_`/`.` → `-`) that are removed from every inbound request,
/// exactly or as a prefix (R-ID-1).
pub(crate) const PROTECTED_EXACT: &[&str] = &[
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
pub(crate) const PROTECTED_PREFIXES: &[&str] =
    &["x-user-", "x-auth-", "x-identity-", "x-forwarded-"];

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
pub(crate) fn is_stripped(name: &str) -> bool {
    if name.contains(['_', '.']) {
        return true;
    }
    // Without `_` and `.`, normalising only lower-cases: compare case-blind, allocating nothing
    // (this runs for every header of every request).
    let n = name.as_bytes();
    PROTECTED_EXACT
        .iter()
        .any(|p| p.as_bytes().eq_ignore_ascii_case(n))
        || PROTECTED_PREFIXES
            .iter()
            .any(|p| n.len() >= p.len() && n[..p.len()].eq_ignore_ascii_case(p.as_bytes()))
}

/// True when a `Connection` option names a header that must not be dropped on the client's say-so
/// (R-ID-3): a protected header, `Host` or `Authorization`.
pub(crate) fn connection_option_is_forbidden(option: &str) -> bool {
    let n = normalise(option.trim());
    n == "host" || n == "authorization" || is_stripped(option.trim())
}

/// The header names to remove from an inbound request: every protected name (R-ID-2) and every
/// option its `Connection` headers name (R-ID-3), lower-case. A `Connection` option naming a header
/// that must not be dropped on the client's say-so, or a value that is not text, refuses the request.
pub(crate) fn strip_plan(headers: &HeaderMap) -> Result<Vec<String>, ProxyError> {
    let mut doomed: Vec<String> = Vec::new();
    for v in headers.get_all(http::header::CONNECTION) {
        let text = v.to_str().map_err(|_| ProxyError::InvalidRequest)?;
        for opt in text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            if connection_option_is_forbidden(opt) {
                return Err(ProxyError::InvalidRequest);
            }
            let lower = opt.to_ascii_lowercase();
            // `Upgrade` is left to pingora's upstream request policy, which forwards it for a
            // WebSocket handshake on a WebSocket route only (`gateway::websocket`).
            if !matches!(lower.as_str(), "keep-alive" | "close" | "upgrade")
                && !doomed.contains(&lower)
            {
                doomed.push(lower);
            }
        }
    }
    for name in headers.keys().map(http::HeaderName::as_str) {
        if is_stripped(name) && !doomed.iter().any(|d| d == name) {
            doomed.push(name.to_owned());
        }
    }
    Ok(doomed)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The allocation-free check says what normalising and comparing says.
        #[test]
        fn is_stripped_agrees_with_normalising_first(name in "[A-Za-z_.-]{0,24}") {
            let n = normalise(&name);
            let slow = name.contains(['_', '.'])
                || PROTECTED_EXACT.contains(&n.as_str())
                || PROTECTED_PREFIXES.iter().any(|p| n.starts_with(p));
            proptest::prop_assert_eq!(is_stripped(&name), slow);
        }

        #[test]
        fn protected_names_in_any_case_are_stripped(i in 0usize..10, upper in proptest::bool::ANY) {
            let name = PROTECTED_EXACT[i % PROTECTED_EXACT.len()];
            let name = if upper { name.to_ascii_uppercase() } else { name.to_owned() };
            proptest::prop_assert!(is_stripped(&name));
            let prefixed = format!("{}anything", PROTECTED_PREFIXES[i % PROTECTED_PREFIXES.len()]);
            proptest::prop_assert!(is_stripped(&prefixed.to_ascii_uppercase()));
        }
    }

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
    fn the_plan_names_protected_headers_and_connection_options_once() {
        let mut h = HeaderMap::new();
        h.append("x-user-id", "mallory".parse().unwrap());
        h.append("x-user-id", "again".parse().unwrap());
        h.append("x_custom", "1".parse().unwrap());
        h.append("connection", "keep-alive, X-Trace".parse().unwrap());
        h.append("connection", "x-trace".parse().unwrap());
        h.append("accept", "*/*".parse().unwrap());
        let mut plan = strip_plan(&h).unwrap();
        plan.sort();
        assert_eq!(plan, ["x-trace", "x-user-id", "x_custom"]);

        let mut h = HeaderMap::new();
        h.append("connection", "close, authorization".parse().unwrap());
        assert_eq!(strip_plan(&h), Err(ProxyError::InvalidRequest));
        let mut h = HeaderMap::new();
        h.append(
            "connection",
            http::HeaderValue::from_bytes(b"\xff").unwrap(),
        );
        assert_eq!(strip_plan(&h), Err(ProxyError::InvalidRequest));
    }
}
