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

/// What the upstream learns about the request besides its own headers.
pub(crate) struct Forwarded<'a> {
    pub request_id: &'a str,
    pub client: Option<std::net::IpAddr>,
    pub host: Option<&'a str>,
    pub traceparent: Option<&'a str>,
    /// Set on authenticated requests.
    pub identity: Option<IdentityHeaders>,
}

/// Sets the upstream request's headers: never the token (R-JWT-8), the request id, `X-Forwarded-*`,
/// the trace context and, for a caller, the identity headers and the signed assertion.
pub(crate) fn forward(up: &mut RequestHeader, f: Forwarded<'_>) -> pingora::Result<()> {
    while up.remove_header(&http::header::AUTHORIZATION).is_some() {}
    up.insert_header("x-request-id", f.request_id)?;
    if let Some(ip) = f.client {
        up.insert_header("x-forwarded-for", ip.to_string())?;
    }
    up.insert_header("x-forwarded-proto", "http")?;
    if let Some(trace) = f.traceparent {
        up.insert_header("traceparent", trace)?;
    }
    if let Some(host) = f.host {
        up.insert_header("x-forwarded-host", host)?;
    }
    if let Some(id) = f.identity {
        up.insert_header("x-user-id", id.user_id)?;
        if let Some(issuer) = id.issuer {
            up.insert_header("x-user-issuer", issuer)?;
        }
        up.insert_header("x-user-email", id.email)?;
        up.insert_header("x-user-roles", id.roles)?;
        up.insert_header("x-identity-assertion", id.assertion)?;
    }
    Ok(())
}

/// Rewrites the upstream's response head: no `Server` banner (ASVS V14.3.3), the security headers
/// unless the upstream set them, and on a CORS route the policy's headers instead of the upstream's.
pub(crate) fn rewrite_response(
    resp: &mut ResponseHeader,
    security_headers: &[(HeaderName, HeaderValue)],
    cors: &CorsAnswer,
    request_id: &str,
) -> pingora::Result<()> {
    while resp.remove_header(&http::header::SERVER).is_some() {}
    for (name, value) in security_headers {
        if !resp.headers.contains_key(name) {
            resp.insert_header(name.clone(), value.clone())?;
        }
    }
    if cors.route {
        for name in crate::policy::cors::upstream_cors_headers(&resp.headers) {
            while resp.remove_header(name.as_str()).is_some() {}
        }
        for (name, value) in &cors.headers {
            resp.insert_header(*name, value.as_str())?;
        }
        resp.append_header(http::header::VARY, "Origin")?;
    }
    resp.insert_header("x-request-id", request_id)?;
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
        forward(
            &mut up,
            Forwarded {
                request_id: "rid",
                client: Some("203.0.113.9".parse().unwrap()),
                host: Some("api.example"),
                traceparent: None,
                identity: Some(IdentityHeaders {
                    user_id: "idp:alice".into(),
                    issuer: Some("idp".into()),
                    email: "a@example.com".into(),
                    roles: "user,admin".into(),
                    assertion: "jwt".into(),
                }),
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
        rewrite_response(&mut resp, &security, &cors, "rid").unwrap();
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
