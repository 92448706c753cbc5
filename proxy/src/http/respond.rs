//! The one writer of synthetic answers: every response the proxy generates itself (refusals,
//! login, logout, preflights, JWKS) is built here from a [`Synthetic`] description, with the same
//! `no-store`, request id, CORS and security headers. It also owns the security-header set.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use settings::Problems;

use crate::error::ProxyError;
use crate::raw::RawSecurityHeaders;

/// Validates `[security_headers]`: (name, value) pairs added to every answer unless already present.
pub(crate) fn security_headers_from_raw(
    raw: &RawSecurityHeaders,
    p: &mut Problems,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut security_headers = Vec::new();
    for (key, name, value) in [
        (
            "security_headers.content_type_options",
            "x-content-type-options",
            &raw.content_type_options,
        ),
        (
            "security_headers.referrer_policy",
            "referrer-policy",
            &raw.referrer_policy,
        ),
        (
            "security_headers.frame_options",
            "x-frame-options",
            &raw.frame_options,
        ),
        (
            "security_headers.strict_transport_security",
            "strict-transport-security",
            &raw.strict_transport_security,
        ),
    ] {
        if value.is_empty() {
            continue;
        }
        match http::HeaderValue::from_str(value) {
            Ok(v) => security_headers.push((http::HeaderName::from_static(name), v)),
            Err(_) => p.push(format!("{key}: `{value}` is not a valid header value")),
        }
    }

    security_headers
}

/// A response the proxy writes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Synthetic {
    pub status: StatusCode,
    /// Headers beyond the ones every synthetic answer carries.
    pub headers: Vec<(&'static str, String)>,
    /// JSON, or empty.
    pub body: String,
    /// Ends the connection (`Connection: close`, keep-alive off).
    pub close: bool,
}

impl Synthetic {
    pub(crate) fn json(status: StatusCode, body: String) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body,
            close: false,
        }
    }

    pub(crate) fn empty(status: StatusCode) -> Self {
        Self::json(status, String::new())
    }

    /// The answer for a refusal (`ProxyError::response`), closing when `close`.
    pub(crate) fn refusal(err: &ProxyError, realm: &str, close: bool) -> Self {
        let r = err.response(realm);
        Self {
            status: r.status,
            headers: r.headers,
            body: r.body,
            close,
        }
    }
}

/// What every synthetic answer of one request shares: its id, its CORS headers and the security set.
pub(crate) struct AnswerContext<'a> {
    pub request_id: &'a HeaderValue,
    pub cors: &'a CorsAnswer,
    pub security_headers: &'a [(HeaderName, HeaderValue)],
    /// The resolved API version's headers (`Api-Version`, and `Deprecation`, `Sunset`, `Link`).
    pub version_headers: &'a [(HeaderName, HeaderValue)],
}

/// The CORS part of a request's answers (R-CORS-4: a CORS route's answers all vary on `Origin`).
#[derive(Debug, Default, Clone)]
pub(crate) struct CorsAnswer {
    /// The route has a CORS policy.
    pub route: bool,
    /// Headers for an allowed origin, on proxied and proxy-generated answers alike.
    pub headers: Vec<(&'static str, String)>,
}

/// The response head of a synthetic answer (`no-store`, JSON when there is a body, the request id,
/// CORS, the security headers, `Connection: close` when closing).
pub(crate) fn head(s: &Synthetic, cx: &AnswerContext<'_>) -> pingora::Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(
        s.status,
        Some(4 + s.headers.len() + cx.security_headers.len() + cx.version_headers.len()),
    )?;
    if !s.body.is_empty() {
        resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    }
    resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    resp.insert_header(http::header::CONTENT_LENGTH, s.body.len())?;
    resp.insert_header("x-request-id", cx.request_id.clone())?;
    for (name, value) in s.headers.iter().chain(&cx.cors.headers) {
        resp.insert_header(*name, value.as_str())?;
    }
    if cx.cors.route {
        resp.append_header(http::header::VARY, "Origin")?;
    }
    for (name, value) in cx.security_headers.iter().chain(cx.version_headers) {
        resp.insert_header(name.clone(), value.clone())?;
    }
    if s.close {
        resp.insert_header(http::header::CONNECTION, "close")?;
    }
    Ok(resp)
}

/// Writes a synthetic answer; the only place the proxy writes a response of its own.
pub(crate) async fn write(
    session: &mut Session,
    s: Synthetic,
    cx: &AnswerContext<'_>,
) -> Result<(), ProxyError> {
    let written = async {
        let resp = head(&s, cx)?;
        if s.close {
            session.set_keepalive(None);
        }
        session
            .write_response_header(Box::new(resp), s.body.is_empty())
            .await?;
        if !s.body.is_empty() {
            session
                .write_response_body(Some(Bytes::from(s.body)), true)
                .await?;
        }
        Ok::<(), Box<pingora::Error>>(())
    };
    written.await.map_err(|error| {
        tracing::debug!(%error, "writing a proxy response failed");
        ProxyError::Internal
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(h: &'a ResponseHeader, name: &str) -> Vec<&'a str> {
        h.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn every_synthetic_answer_carries_the_shared_headers() {
        let security = [(
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        )];
        let cors = CorsAnswer {
            route: true,
            headers: vec![("access-control-allow-origin", "https://app.example".into())],
        };
        let rid = HeaderValue::from_static("rid");
        let cx = AnswerContext {
            request_id: &rid,
            cors: &cors,
            security_headers: &security,
            version_headers: &[],
        };
        let s = Synthetic::refusal(&ProxyError::MissingToken, "edge", true);
        let h = head(&s, &cx).unwrap();
        assert_eq!(h.status, StatusCode::UNAUTHORIZED);
        assert_eq!(header(&h, "content-type"), ["application/json"]);
        assert_eq!(header(&h, "cache-control"), ["no-store"]);
        assert_eq!(
            header(&h, "content-length"),
            [s.body.len().to_string().as_str()]
        );
        assert_eq!(header(&h, "x-request-id"), ["rid"]);
        assert_eq!(header(&h, "www-authenticate"), ["Bearer realm=\"edge\""]);
        assert_eq!(
            header(&h, "access-control-allow-origin"),
            ["https://app.example"]
        );
        assert_eq!(header(&h, "vary"), ["Origin"]);
        assert_eq!(header(&h, "x-frame-options"), ["DENY"]);
        assert_eq!(header(&h, "connection"), ["close"]);

        let plain = head(
            &Synthetic::empty(StatusCode::NO_CONTENT),
            &AnswerContext {
                request_id: &rid,
                cors: &CorsAnswer::default(),
                security_headers: &[],
                version_headers: &[],
            },
        )
        .unwrap();
        assert!(
            plain.headers.get("content-type").is_none(),
            "no body, no type"
        );
        assert!(plain.headers.get("vary").is_none());
        assert!(plain.headers.get("connection").is_none());
        assert_eq!(header(&plain, "content-length"), ["0"]);
    }
}
