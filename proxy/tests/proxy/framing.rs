//! Request framing and header limits over raw sockets (SECURITY.md R-HTTP-1, R-HTTP-2): each malformed
//! request is refused with its status, the connection is closed, and the recording upstream sees nothing.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{TestProxy, TestUpstream};

/// What came back on a raw connection.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: Option<u16>,
    pub head: String,
    /// Header names (lower case) and values of the first answer.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The proxy closed the connection after answering.
    pub closed: bool,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The shape every answer the proxy generates has (SECURITY.md conventions): JSON with a stable
    /// code, `no-store`, the security headers, no `Server`, and `Connection: close` when it closed.
    pub fn assert_ours(&self, case: &str, code: &str) {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{case}: {}",
            self.head
        );
        assert_eq!(self.header("cache-control"), Some("no-store"), "{case}");
        assert_eq!(
            self.header("x-content-type-options"),
            Some("nosniff"),
            "{case}"
        );
        assert_eq!(self.header("x-frame-options"), Some("DENY"), "{case}");
        assert_eq!(
            self.header("referrer-policy"),
            Some("no-referrer"),
            "{case}"
        );
        assert_eq!(self.header("server"), None, "{case}: {}", self.head);
        let body: serde_json::Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{case}: body {:?} is not JSON: {e}", self.body));
        assert_eq!(body["error"], code, "{case}: {}", self.body);
        if self.closed {
            assert_eq!(
                self.header("connection"),
                Some("close"),
                "{case}: {}",
                self.head
            );
        }
        if self.status == Some(405) {
            assert!(self.header("allow").is_some(), "{case}: 405 without Allow");
        }
    }
}

/// Sends `bytes` and reads until the proxy closes or 2 s pass.
pub async fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> RawAnswer {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut buf = Vec::new();
    let mut closed = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
    }
    parse_answer(&String::from_utf8_lossy(&buf), closed)
}

/// The first answer in `text`.
pub fn parse_answer(text: &str, closed: bool) -> RawAnswer {
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok());
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let headers: Vec<(String, String)> = head
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(rest.len());
    RawAnswer {
        status,
        head: head.to_owned(),
        body: rest.get(..len).unwrap_or(rest).to_owned(),
        headers,
        closed,
    }
}

#[tokio::test]
async fn malformed_heads_are_refused_closed_and_never_forwarded() {
    let up = TestUpstream::start().await;
    let p = TestProxy::start(up.addr).await;
    let many: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let big: String = (0..8)
        .map(|i| format!("X-H{i}: {}\r\n", "a".repeat(5000)))
        .collect();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("Content-Length with a letter", b"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\nhello".to_vec(), 400),
        ("hex Content-Length", b"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello".to_vec(), 400),
        ("negative Content-Length", b"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\nhello".to_vec(), 400),
        ("huge Content-Length", b"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\nhello".to_vec(), 400),
        ("TE identity", b"POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n".to_vec(), 400),
        ("TE chunked on HTTP/1.0 (no Host)", b"POST /public/x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), 400),
        ("NUL in a header value", b"GET /public/x HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n".to_vec(), 400),
        ("garbage request line", b"HELLO\r\n\r\n".to_vec(), 400),
        ("unknown HTTP version", b"GET /public/x HTTP/3.7\r\nHost: a\r\n\r\n".to_vec(), 400),
        ("CONNECT authority form", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n".to_vec(), 405),
        ("CONNECT origin form", b"CONNECT /public/x HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), 405),
        ("CONNECT absolute form", b"CONNECT http://a/public/x HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), 405),
        ("duplicate Content-Length", b"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello".to_vec(), 400),
        ("list Content-Length", b"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello".to_vec(), 400),
        ("signed Content-Length", b"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello".to_vec(), 400),
        ("TE gzip, chunked", b"POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n".to_vec(), 400),
        ("TE xchunked", b"POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n".to_vec(), 400),
        ("two TE lines", b"POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), 400),
        ("TE on HTTP/1.0", b"POST /public/x HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), 400),
        ("space before colon", b"GET /public/x HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n".to_vec(), 400),
        ("obs-fold", b"GET /public/x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n".to_vec(), 400),
        ("bare CR", b"GET /public/x HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n".to_vec(), 400),
        ("bare LF line ends", b"GET /public/x HTTP/1.1\nHost: a\n\n".to_vec(), 400),
        ("one bare LF among CRLFs", b"GET /public/x HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n".to_vec(), 400),
        ("bare LF ending the head", b"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\nhello".to_vec(), 400),
        ("whitespace before first header", b"GET /public/x HTTP/1.1\r\n Host: a\r\n\r\n".to_vec(), 400),
        ("missing Host", b"GET /public/x HTTP/1.1\r\n\r\n".to_vec(), 400),
        ("duplicate Host", b"GET /public/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(), 400),
        ("bad header name", b"GET /public/x HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n".to_vec(), 400),
        ("request line over 8 KiB", format!("GET /public/{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9000)).into_bytes(), 414),
        ("header line over 8 KiB", format!("GET /public/x HTTP/1.1\r\nHost: a\r\nX-A: {}\r\n\r\n", "a".repeat(9000)).into_bytes(), 431),
        ("over 100 headers", format!("GET /public/x HTTP/1.1\r\nHost: a\r\n{many}\r\n").into_bytes(), 431),
        ("headers over 32 KiB", format!("GET /public/x HTTP/1.1\r\nHost: a\r\n{big}\r\n").into_bytes(), 431),
        ("Connection names an identity header", b"GET /public/x HTTP/1.1\r\nHost: a\r\nConnection: X-User-Id\r\n\r\n".to_vec(), 400),
        ("Connection names Authorization", b"GET /public/x HTTP/1.1\r\nHost: a\r\nConnection: authorization\r\n\r\n".to_vec(), 400),
    ];
    for (name, bytes, status) in cases {
        let a = raw(p.addr, &bytes).await;
        assert_eq!(a.status, Some(status), "{name}: {}", a.head);
        assert!(a.closed, "{name}: the connection stays open");
        let code = match status {
            405 => "method_not_allowed",
            414 => "uri_too_long",
            431 => "headers_too_large",
            _ => "invalid_request",
        };
        a.assert_ours(name, code);
    }
    // A refused second request on a kept-alive connection is answered the same way.
    let mut c = TcpStream::connect(p.addr).await.unwrap();
    c.write_all(b"GET /public/x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut first = Vec::new();
    while !String::from_utf8_lossy(&first).contains("\"path\":\"/public/x\"") {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(2), c.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed after the first answer");
        first.extend_from_slice(&chunk[..n]);
    }
    c.write_all(b"GET /public/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), c.read_to_end(&mut out)).await;
    let second = parse_answer(&String::from_utf8_lossy(&out), true);
    assert_eq!(second.status, Some(400), "{}", second.head);
    second.assert_ours("duplicate Host on a reused connection", "invalid_request");
    assert_eq!(
        up.seen.count(),
        1,
        "only the first, valid request reached the upstream: {:?}",
        up.seen.all()
    );
    let text = p.metrics_with("edge_proxy_framing_rejections_total").await;
    assert!(
        text.contains(r#"edge_proxy_framing_rejections_total{reason="headers_too_large"} 3"#),
        "{text}"
    );
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_framed_by_te_only_and_closes() {
    let up = TestUpstream::start().await;
    let p = TestProxy::start(up.addr).await;
    // A smuggling attempt: by Content-Length the body is "0\r\n\r\nGET /public/smuggled …", by
    // Transfer-Encoding it ends after "0\r\n\r\n" and a second request follows.
    let smuggle = b"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /public/smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let a = raw(p.addr, smuggle).await;
    assert!(
        a.closed,
        "the connection must close after a CL+TE request: {}",
        a.head
    );
    let seen = up.forwarded();
    assert!(
        seen.iter().all(|s| s.path != "/public/smuggled"),
        "the smuggled request reached the upstream"
    );
    assert!(seen
        .iter()
        .all(|s| !s.headers.contains_key("content-length") || s.headers["content-length"] == "0"));
}

#[tokio::test]
async fn trace_and_connect_are_never_allowed() {
    let up = TestUpstream::start().await;
    let p = TestProxy::start(up.addr).await;
    for method in ["TRACE", "CONNECT"] {
        let target = if method == "CONNECT" {
            "a:443"
        } else {
            "/public/x"
        };
        let a = raw(
            p.addr,
            format!("{method} {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert_eq!(a.status, Some(405), "{method}: {}", a.head);
        a.assert_ours(method, "method_not_allowed");
        assert_eq!(
            a.header("allow"),
            Some("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
            "{method}"
        );
    }
    assert_eq!(up.seen.count(), 0);
}

#[tokio::test]
async fn chunk_lines_over_1_kib_or_with_bare_line_ends_are_refused() {
    let up = TestUpstream::start().await;
    let p = TestProxy::start(up.addr).await;
    let head = "POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let ok_ext = format!("{head}4;{}\r\nabcd\r\n0\r\n\r\n", "e".repeat(1000));
    let a = raw(p.addr, ok_ext.as_bytes()).await;
    assert_eq!(
        a.status,
        Some(200),
        "a 1000-byte extension is fine: {}",
        a.head
    );
    assert_eq!(up.forwarded().last().unwrap().body, Some(4));

    let cases: Vec<(&str, String)> = vec![
        (
            "extension over 1 KiB",
            format!("{head}4;{}\r\nabcd\r\n0\r\n\r\n", "e".repeat(1100)),
        ),
        (
            "extension over 1 KiB on the last chunk",
            format!("{head}4\r\nabcd\r\n0;{}\r\n\r\n", "e".repeat(1100)),
        ),
        (
            "bare LF after the data",
            format!("{head}4\r\nabcd\n0\r\n\r\n"),
        ),
        (
            "bare LF in a trailer",
            format!("{head}4\r\nabcd\r\n0\r\nX-T: 1\n\r\n"),
        ),
    ];
    let before = up.forwarded().len();
    for (name, bytes) in cases {
        let a = raw(p.addr, bytes.as_bytes()).await;
        assert_eq!(a.status, Some(400), "{name}: {}", a.head);
        assert!(a.closed, "{name}");
    }
    assert!(
        up.forwarded()[before..].iter().all(|s| s.body.is_none()),
        "the upstream never received a complete body: {:?}",
        up.forwarded()
    );

    // The same long extension trickled across several reads.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(format!("{head}4\r\nabcd\r\n2;").as_bytes())
        .await
        .unwrap();
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if s.write_all(&[b'e'; 100]).await.is_err() {
            break;
        }
    }
    let _ = s.write_all(b"\r\nab\r\n0\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
}
