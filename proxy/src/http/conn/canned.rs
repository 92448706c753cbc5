//! Answers written straight to the socket, below pingora's HTTP layer: the head deadline's 408, the
//! per-IP limit's 429, and the replacements for the answers pingora's own parser writes before any
//! filter runs (a malformed head gets 400, `CONNECT` 405). They are rendered once at start-up from
//! [`ProxyError::response`] and the configured security headers, so every answer the proxy generates
//! has the same shape: `application/json`, `{"error":"<code>"}`, `Cache-Control: no-store`, the
//! security headers, no `Server` header, and `Connection: close`.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::error::{ProxyError, FORWARDABLE_METHODS};

/// The answers, rendered once.
#[derive(Debug)]
pub(crate) struct CannedAnswers {
    security: Vec<(http::HeaderName, http::HeaderValue)>,
    head_timeout: Box<[u8]>,
    too_many_connections: Box<[u8]>,
    bad_request: Box<[u8]>,
    method_not_allowed: Box<[u8]>,
}

impl CannedAnswers {
    pub(crate) fn new(security: &[(http::HeaderName, http::HeaderValue)]) -> Self {
        Self {
            security: security.to_vec(),
            head_timeout: render(&ProxyError::RequestTimeout, security).into(),
            too_many_connections: render(&ProxyError::TooManyConnections, security).into(),
            bad_request: render(&ProxyError::InvalidRequest, security).into(),
            method_not_allowed: render(&connect_refused(), security).into(),
        }
    }

    /// `408 request_timeout`: the head did not arrive within the deadline.
    pub(crate) fn head_timeout(&self) -> &[u8] {
        &self.head_timeout
    }

    /// `429 too_many_connections`: the client IP is over its connection limit.
    pub(crate) fn too_many_connections(&self) -> &[u8] {
        &self.too_many_connections
    }

    /// Our answer in place of the one pingora wrote with `status` before any filter saw the request.
    pub(crate) fn for_parser_status(&self, status: Option<u16>) -> Cow<'_, [u8]> {
        match status {
            Some(400) | None => Cow::Borrowed(&self.bad_request),
            Some(405) => Cow::Borrowed(&self.method_not_allowed),
            Some(other) => Cow::Owned(render(
                &ProxyError::for_parser_status(other),
                &self.security,
            )),
        }
    }
}

/// pingora refuses `CONNECT` (any form) before the filters, with 405.
fn connect_refused() -> ProxyError {
    ProxyError::MethodNotAllowed {
        allow: FORWARDABLE_METHODS.to_owned(),
    }
}

/// The status code of an HTTP/1 status line at the start of `bytes` (`HTTP/1.1 400 Bad Request`).
pub(crate) fn status_of(bytes: &[u8]) -> Option<u16> {
    let code = bytes.strip_prefix(b"HTTP/1.")?.get(2..5)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// A complete HTTP/1.1 answer for `err` that closes the connection.
fn render(err: &ProxyError, security: &[(http::HeaderName, http::HeaderValue)]) -> Vec<u8> {
    let r = err.response("");
    let mut head = String::with_capacity(256);
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncache-control: no-store\r\n",
        r.status.as_u16(),
        r.status.canonical_reason().unwrap_or("Error")
    );
    for (name, value) in &r.headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    let mut out = head.into_bytes();
    for (name, value) in security {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let _ = write!(
        FmtBytes(&mut out),
        "content-length: {}\r\nconnection: close\r\n\r\n{}",
        r.body.len(),
        r.body
    );
    out
}

/// `fmt::Write` onto a byte buffer.
struct FmtBytes<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for FmtBytes<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn security() -> Vec<(http::HeaderName, http::HeaderValue)> {
        vec![(
            http::HeaderName::from_static("x-content-type-options"),
            http::HeaderValue::from_static("nosniff"),
        )]
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn a_parser_refusal_becomes_our_json_answer_with_the_same_status() {
        let c = CannedAnswers::new(&security());
        let a = text(&c.for_parser_status(status_of(b"HTTP/1.1 400 Bad Request\r\n")));
        assert!(a.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{a}");
        assert!(a.contains("\r\ncontent-type: application/json\r\n"), "{a}");
        assert!(a.contains("\r\ncache-control: no-store\r\n"), "{a}");
        assert!(a.contains("\r\nx-content-type-options: nosniff\r\n"), "{a}");
        assert!(a.contains("\r\nconnection: close\r\n"), "{a}");
        assert!(!a.to_ascii_lowercase().contains("server:"), "{a}");
        assert!(
            a.ends_with("\r\n\r\n{\"error\":\"invalid_request\"}"),
            "{a}"
        );
        let len = "{\"error\":\"invalid_request\"}".len();
        assert!(a.contains(&format!("content-length: {len}\r\n")), "{a}");
    }

    #[test]
    fn connect_gets_405_with_allow() {
        let c = CannedAnswers::new(&[]);
        let a = text(&c.for_parser_status(Some(405)));
        assert!(a.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{a}");
        assert!(
            a.contains(&format!("\r\nallow: {FORWARDABLE_METHODS}\r\n")),
            "{a}"
        );
        assert!(a.ends_with("{\"error\":\"method_not_allowed\"}"), "{a}");
    }

    #[test]
    fn other_statuses_keep_their_status() {
        let c = CannedAnswers::new(&[]);
        let a = text(&c.for_parser_status(Some(431)));
        assert!(a.starts_with("HTTP/1.1 431 "), "{a}");
        assert!(a.ends_with("{\"error\":\"headers_too_large\"}"), "{a}");
    }

    #[test]
    fn connection_level_answers_share_the_shape() {
        let c = CannedAnswers::new(&security());
        let t = text(c.head_timeout());
        assert!(t.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{t}");
        assert!(t.contains("x-content-type-options: nosniff"), "{t}");
        assert!(t.ends_with("{\"error\":\"request_timeout\"}"), "{t}");
        let m = text(c.too_many_connections());
        assert!(m.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{m}");
        assert!(m.contains("\r\nretry-after: 1\r\n"), "{m}");
        assert!(m.ends_with("{\"error\":\"too_many_connections\"}"), "{m}");
    }

    #[test]
    fn status_lines_are_read_strictly() {
        assert_eq!(status_of(b"HTTP/1.1 405 Method Not Allowed"), Some(405));
        assert_eq!(status_of(b"HTTP/1.0 400 "), Some(400));
        assert_eq!(status_of(b"HTTP/2 400"), None);
        assert_eq!(status_of(b"HTTP/1.1 4x0"), None);
        assert_eq!(status_of(b"HTTP/1."), None);
    }
}
