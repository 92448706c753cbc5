//! Request-head hygiene (SECURITY.md R-HTTP-1, R-HTTP-2), checked before anything else reads the
//! request. pingora's parser already refuses most malformed heads (duplicate or list-valued
//! `Content-Length`, unknown transfer codings, whitespace before `:`, obs-fold, bare CR, duplicate
//! `Host`, bad header names, `Transfer-Encoding` on HTTP/1.0); this module refuses what it lets through:
//! `Content-Length` together with `Transfer-Encoding`, any `Transfer-Encoding` other than exactly one
//! `chunked`, a missing `Host`, and oversized request lines and headers. Every framing refusal closes the
//! connection.
//!
//! httparse accepts a bare LF as a line end; `check_raw_head` refuses it on the exact bytes pingora
//! read for the head (`get_headers_raw_bytes`), so nothing a downstream parser might split differently
//! gets through.

use pingora::http::RequestHeader;

use crate::error::ProxyError;

/// nginx's `large_client_header_buffers 4 8k`: one line (request line or header field) at most 8 KiB.
pub(crate) const MAX_LINE_BYTES: usize = 8 * 1024;
/// All header fields together (names, values and separators).
pub(crate) const MAX_HEADER_BYTES: usize = 32 * 1024;
/// More fields than any browser sends (pingora itself allows 256).
pub(crate) const MAX_HEADER_COUNT: usize = 100;

/// Checks the raw bytes of the request head (request line through the blank line): every LF must end
/// a CRLF pair and every CR must start one (R-HTTP-1: bare CR or bare LF in the head).
pub(crate) fn check_raw_head(raw: &[u8]) -> Result<(), ProxyError> {
    let mut prev = 0u8;
    for (i, &b) in raw.iter().enumerate() {
        let bare_lf = b == b'\n' && prev != b'\r';
        let bare_cr = prev == b'\r' && b != b'\n';
        if bare_lf || bare_cr || (b == b'\r' && i + 1 == raw.len()) {
            return Err(ProxyError::InvalidRequest);
        }
        prev = b;
    }
    Ok(())
}

/// Checks the request head; errors are answered by `Gateway::reject` (and close the connection).
pub(crate) fn check_head(req: &RequestHeader) -> Result<(), ProxyError> {
    let target = req.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if target + req.method.as_str().len() + 10 > MAX_LINE_BYTES {
        return Err(ProxyError::UriTooLong);
    }
    let mut total = 0;
    for (name, value) in &req.headers {
        let line = name.as_str().len() + 2 + value.len();
        if line > MAX_LINE_BYTES {
            return Err(ProxyError::HeadersTooLarge);
        }
        total += line + 2;
    }
    if total > MAX_HEADER_BYTES || req.headers.len() > MAX_HEADER_COUNT {
        return Err(ProxyError::HeadersTooLarge);
    }
    if req.version != http::Version::HTTP_10 {
        let hosts = req.headers.get_all(http::header::HOST).iter().count();
        if hosts != 1 {
            return Err(ProxyError::InvalidRequest);
        }
    }
    let te: Vec<&http::HeaderValue> = req
        .headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .collect();
    match te.as_slice() {
        [] => check_content_length_syntax(req),
        [one] => {
            let chunked_only = one
                .to_str()
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
            if !chunked_only || req.version == http::Version::HTTP_10 {
                return Err(ProxyError::InvalidRequest);
            }
            // Stricter than "drop CL, use TE": both at once is a smuggling attempt (R-HTTP-1).
            if req.headers.contains_key(http::header::CONTENT_LENGTH) {
                return Err(ProxyError::InvalidRequest);
            }
            Ok(())
        }
        _ => Err(ProxyError::InvalidRequest),
    }
}

/// Exactly one `Content-Length` of 1 to 18 digits, when present.
fn check_content_length_syntax(req: &RequestHeader) -> Result<(), ProxyError> {
    let mut values = req.headers.get_all(http::header::CONTENT_LENGTH).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(()),
        (Some(v), None) => {
            let ok = v.to_str().is_ok_and(|t| {
                (1..=18).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit())
            });
            if ok {
                Ok(())
            } else {
                Err(ProxyError::InvalidRequest)
            }
        }
        _ => Err(ProxyError::InvalidRequest),
    }
}

/// The declared body length, if any (after [`check_head`] it is well-formed).
pub(crate) fn content_length(req: &RequestHeader) -> Option<u64> {
    req.headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_line_ends_in_the_raw_head_are_refused() {
        assert!(check_raw_head(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
        for bad in [
            &b"GET / HTTP/1.1\nHost: a\n\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n\n",
            b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n",
        ] {
            assert!(
                check_raw_head(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad).escape_debug()
            );
        }
    }

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/x", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        for h in [
            vec![
                ("host", "a"),
                ("content-length", "5"),
                ("transfer-encoding", "chunked"),
            ],
            vec![("host", "a"), ("transfer-encoding", "gzip, chunked")],
            vec![
                ("host", "a"),
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
            vec![
                ("host", "a"),
                ("content-length", "5"),
                ("content-length", "5"),
            ],
            vec![("host", "a"), ("content-length", "1234567890123456789")],
            vec![("content-length", "5")],
            vec![("host", "a"), ("host", "b")],
        ] {
            assert_eq!(
                check_head(&req(&h)),
                Err(ProxyError::InvalidRequest),
                "{h:?}"
            );
        }
        assert_eq!(
            check_head(&req(&[("host", "a"), ("transfer-encoding", " Chunked ")])),
            Ok(())
        );
        assert_eq!(
            check_head(&req(&[("host", "a"), ("content-length", "0")])),
            Ok(())
        );
    }

    #[test]
    fn oversized_heads_are_refused_with_414_or_431() {
        let long = "a".repeat(MAX_LINE_BYTES);
        let r = RequestHeader::build("GET", format!("/{long}").as_bytes(), None).unwrap();
        assert_eq!(check_head(&r), Err(ProxyError::UriTooLong));
        assert_eq!(
            check_head(&req(&[("host", "a"), ("x-a", &long)])),
            Err(ProxyError::HeadersTooLarge)
        );
        let five_k = "a".repeat(5000);
        let many: Vec<(String, &str)> = (0..7)
            .map(|i| (format!("x-h{i}"), five_k.as_str()))
            .collect();
        let mut big = req(&[("host", "a")]);
        for (k, v) in &many {
            big.append_header(k.clone(), *v).unwrap();
        }
        assert_eq!(check_head(&big), Err(ProxyError::HeadersTooLarge));
        let mut lots = req(&[("host", "a")]);
        for i in 0..MAX_HEADER_COUNT {
            lots.append_header(format!("x-{i}"), "v").unwrap();
        }
        assert_eq!(check_head(&lots), Err(ProxyError::HeadersTooLarge));
    }
}
