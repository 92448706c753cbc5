//! Header work on pingora's request and response heads, one pass each: inbound stripping (the plan
//! comes from `policy::inbound`), the headers the upstream gets, and the rewrite of the upstream's
//! response (server banner, security headers, CORS).

use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};

use crate::error::ProxyError;
use crate::http::respond::CorsAnswer;
use crate::policy::inbound::strip_plan;
use crate::tokens::assertion::IdentityHeaders;

/// Removes every inbound identity or client-address header (R-ID-2) and what `Connection` names
/// (R-ID-3). Removal goes through pingora so its header-case map stays in step.
pub(crate) fn strip_inbound(req: &mut RequestHeader) -> Result<(), ProxyError> {
    for name in strip_plan(&req.headers)? {
        while req.remove_header(name.as_str()).is_some() {}
    }
    Ok(())
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static X_USER_ID: HeaderName = HeaderName::from_static("x-user-id");
static X_USER_ISSUER: HeaderName = HeaderName::from_static("x-user-issuer");
static X_USER_EMAIL: HeaderName = HeaderName::from_static("x-user-email");
static X_USER_ROLES: HeaderName = HeaderName::from_static("x-user-roles");
static X_IDENTITY_ASSERTION: HeaderName = HeaderName::from_static("x-identity-assertion");
static API_VERSION: HeaderName = HeaderName::from_static(crate::policy::versioning::DEFAULT_HEADER);

/// What the upstream learns about the request besides its own headers.
pub(crate) struct Forwarded<'a> {
    pub request_id: &'a HeaderValue,
    pub client: Option<std::net::IpAddr>,
    pub host: Option<&'a HeaderValue>,
    pub traceparent: Option<&'a str>,
    /// Set on authenticated requests.
    pub identity: Option<IdentityHeaders>,
    /// On a versioned route: the scheme's header and the resolved version, sent as the only copy.
    pub version: Option<(&'a HeaderName, &'a HeaderValue)>,
}

/// A header value the proxy made itself (ids, addresses, tokens: visible ASCII by construction).
fn value(s: String) -> pingora::Result<HeaderValue> {
    HeaderValue::try_from(s).map_err(|_| {
        pingora::Error::explain(pingora::ErrorType::InternalError, "invalid header value")
    })
}

/// Sets the upstream request's headers: never the token (R-JWT-8), the request id, `X-Forwarded-*`,
/// the trace context, for a caller the identity headers and the signed assertion, and on a
/// versioned route exactly one version header (every client copy of it and of `Api-Version`, in
/// any case, removed first; `_` spellings never get this far, `policy::inbound`).
///
/// The upstream head is rebuilt without pingora's header-case map (names go out lower-case, as
/// Envoy and HAProxy send them) and with room reserved, so the added headers are plain inserts
/// of prebuilt names instead of a name parse and two map inserts each, with the maps growing.
pub(crate) fn forward(up: &mut RequestHeader, f: Forwarded<'_>) -> pingora::Result<()> {
    let raw_target = (up.raw_path() != path_and_query(up)).then(|| up.raw_path().to_vec());
    let placeholder = RequestHeader::build_no_case(http::Method::GET, b"/", Some(0))?;
    let mut parts: http::request::Parts = std::mem::replace(up, placeholder).into();
    let h = &mut parts.headers;
    h.remove(http::header::AUTHORIZATION);
    h.reserve(10);
    h.insert(X_REQUEST_ID.clone(), f.request_id.clone());
    if let Some(ip) = f.client {
        let mut text = String::with_capacity(15);
        crate::policy::client::push_ip(&mut text, ip);
        h.insert(X_FORWARDED_FOR.clone(), value(text)?);
    }
    h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    if let Some(trace) = f.traceparent {
        h.insert(TRACEPARENT.clone(), value(trace.to_owned())?);
    }
    if let Some(host) = f.host {
        h.insert(X_FORWARDED_HOST.clone(), host.clone());
    }
    if let Some(id) = f.identity {
        h.insert(X_USER_ID.clone(), value(id.user_id)?);
        if let Some(issuer) = id.issuer {
            h.insert(X_USER_ISSUER.clone(), value(issuer)?);
        }
        h.insert(X_USER_EMAIL.clone(), value(id.email)?);
        h.insert(X_USER_ROLES.clone(), value(id.roles)?);
        h.insert(X_IDENTITY_ASSERTION.clone(), value(id.assertion)?);
    }
    if let Some((name, version)) = f.version {
        h.remove(&API_VERSION);
        h.insert(name.clone(), version.clone());
    }
    *up = RequestHeader::from(parts);
    if let Some(raw) = raw_target {
        // A target the URI does not spell byte for byte (absolute form) is forwarded as received.
        up.set_raw_path(&raw)?;
    }
    Ok(())
}

fn path_and_query(req: &RequestHeader) -> &[u8] {
    req.uri
        .path_and_query()
        .map_or(b"/".as_slice(), |p| p.as_str().as_bytes())
}

/// Rewrites the upstream's response head: no `Server` banner (ASVS V14.3.3), the security headers
/// unless the upstream set them, and on a CORS route the policy's headers instead of the upstream's.
/// Like the request, the head is rebuilt without the case map (lower-case names), so the inserts
/// are plain map operations.
pub(crate) fn rewrite_response(
    resp: &mut ResponseHeader,
    security_headers: &[(HeaderName, HeaderValue)],
    version: Option<(&[(HeaderName, HeaderValue)], &HeaderValue)>,
    cors: &CorsAnswer,
    request_id: &HeaderValue,
) -> pingora::Result<()> {
    let reason = resp
        .get_reason_phrase()
        .filter(|r| Some(*r) != resp.status.canonical_reason())
        .map(str::to_owned);
    let placeholder = ResponseHeader::build_no_case(resp.status, Some(0))?;
    let mut parts: http::response::Parts = std::mem::replace(resp, placeholder).into();
    let h = &mut parts.headers;
    h.remove(http::header::SERVER);
    let version_headers = version.map_or(&[][..], |(headers, _)| headers);
    h.reserve(security_headers.len() + version_headers.len() + cors.headers.len() + 3);
    for (name, value) in security_headers {
        if !h.contains_key(name) {
            h.insert(name.clone(), value.clone());
        }
    }
    // The edge's word on the version and its lifecycle replaces the upstream's; the answer varies
    // with what chose the version (a cache must not serve one version's answer for another).
    if let Some((headers, vary)) = version {
        for (name, value) in headers {
            h.insert(name.clone(), value.clone());
        }
        h.append(http::header::VARY, vary.clone());
    }
    if cors.route {
        for name in crate::policy::cors::upstream_cors_headers(h) {
            h.remove(name);
        }
        for (name, v) in &cors.headers {
            h.insert(*name, value(v.clone())?);
        }
        h.append(http::header::VARY, HeaderValue::from_static("Origin"));
    }
    h.insert(X_REQUEST_ID.clone(), request_id.clone());
    *resp = ResponseHeader::from(parts);
    if let Some(reason) = reason {
        resp.set_reason_phrase(Some(&reason))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripping_goes_through_the_case_map() {
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.append_header("X-User-Id", "mallory").unwrap();
        req.append_header("x-user-id", "again").unwrap();
        req.append_header("Connection", "X-Trace").unwrap();
        req.append_header("X-Trace", "1").unwrap();
        req.append_header("Accept", "*/*").unwrap();
        strip_inbound(&mut req).unwrap();
        let mut names: Vec<&str> = req.headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "connection"]);
    }

    #[test]
    fn the_upstream_never_sees_the_token_and_gets_the_identity() {
        let mut up = RequestHeader::build("GET", b"/x", None).unwrap();
        up.append_header("Authorization", "Bearer t").unwrap();
        up.append_header("Authorization", "Bearer u").unwrap();
        let (rid, host) = (
            HeaderValue::from_static("rid"),
            HeaderValue::from_static("api.example"),
        );
        forward(
            &mut up,
            Forwarded {
                request_id: &rid,
                client: Some("203.0.113.9".parse().unwrap()),
                host: Some(&host),
                traceparent: None,
                identity: Some(IdentityHeaders {
                    user_id: "idp:alice".into(),
                    issuer: Some("idp".into()),
                    email: "a@example.com".into(),
                    roles: "user,admin".into(),
                    assertion: "jwt".into(),
                }),
                version: None,
            },
        )
        .unwrap();
        let get = |n: &str| up.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(get("authorization"), None);
        assert_eq!(get("x-forwarded-for").as_deref(), Some("203.0.113.9"));
        assert_eq!(get("x-forwarded-host").as_deref(), Some("api.example"));
        assert_eq!(get("x-user-id").as_deref(), Some("idp:alice"));
        assert_eq!(get("x-user-issuer").as_deref(), Some("idp"));
        assert_eq!(get("x-user-roles").as_deref(), Some("user,admin"));
        assert_eq!(get("x-identity-assertion").as_deref(), Some("jwt"));
        assert_eq!(get("traceparent"), None);
    }

    #[test]
    fn the_rebuilt_heads_keep_the_target_bytes_and_the_reason_phrase() {
        let rid = HeaderValue::from_static("rid");
        for target in [b"/a%2Fb?q=1".as_slice(), b"http://api.example/x?y", b"/"] {
            let mut up = RequestHeader::build("GET", target, None).unwrap();
            up.append_header("X-Custom", "1").unwrap();
            let f = Forwarded {
                request_id: &rid,
                client: None,
                host: None,
                traceparent: None,
                identity: None,
                version: None,
            };
            forward(&mut up, f).unwrap();
            assert_eq!(up.raw_path(), target);
            assert_eq!(up.headers["x-custom"], "1");
            assert!(!up.has_case(), "names go upstream lower-case");
        }
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.set_reason_phrase(Some("Fine")).unwrap();
        rewrite_response(&mut resp, &[], None, &CorsAnswer::default(), &rid).unwrap();
        assert_eq!(resp.get_reason_phrase(), Some("Fine"));
        let mut plain = ResponseHeader::build(404, None).unwrap();
        rewrite_response(&mut plain, &[], None, &CorsAnswer::default(), &rid).unwrap();
        assert_eq!(plain.get_reason_phrase(), Some("Not Found"));
    }

    #[test]
    fn a_cors_route_answers_with_the_policy_not_the_upstream() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("Server", "nginx/1.0").unwrap();
        resp.append_header("Access-Control-Allow-Origin", "*")
            .unwrap();
        resp.append_header("Access-Control-Allow-Credentials", "true")
            .unwrap();
        resp.append_header("X-Frame-Options", "SAMEORIGIN").unwrap();
        let security = [
            (
                HeaderName::from_static("x-frame-options"),
                HeaderValue::from_static("DENY"),
            ),
            (
                HeaderName::from_static("referrer-policy"),
                HeaderValue::from_static("no-referrer"),
            ),
        ];
        let cors = CorsAnswer {
            route: true,
            headers: vec![("access-control-allow-origin", "https://app.example".into())],
        };
        rewrite_response(
            &mut resp,
            &security,
            None,
            &cors,
            &HeaderValue::from_static("rid"),
        )
        .unwrap();
        let all = |n: &str| -> Vec<String> {
            resp.headers
                .get_all(n)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect()
        };
        assert!(all("server").is_empty());
        assert_eq!(all("access-control-allow-origin"), ["https://app.example"]);
        assert!(all("access-control-allow-credentials").is_empty());
        assert_eq!(
            all("x-frame-options"),
            ["SAMEORIGIN"],
            "the upstream's own value stays"
        );
        assert_eq!(all("referrer-policy"), ["no-referrer"]);
        assert_eq!(all("vary"), ["Origin"]);
        assert_eq!(all("x-request-id"), ["rid"]);
    }
}
