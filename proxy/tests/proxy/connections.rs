//! Connection-level limits over raw sockets (R-HTTP table): the total deadline for a request head
//! (slowloris: a head trickled byte by byte, or nothing at all, gets 408 and a close) that never
//! fires on keep-alive idle time or on a slow but legitimate body, and the per-IP connection limit.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::harness::{TestProxy, TestUpstream};

const LIMITS: &str = "[limits]\nheader_timeout_ms = 1000\nmax_connections_per_ip = 3\n";

/// Reads until close or `within`; returns the text and whether the proxy closed.
async fn read_all(s: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut buf = Vec::new();
    let closed = matches!(
        tokio::time::timeout(within, s.read_to_end(&mut buf)).await,
        Ok(Ok(_)) | Ok(Err(_))
    );
    (String::from_utf8_lossy(&buf).into_owned(), closed)
}

#[tokio::test]
async fn a_trickled_head_is_cut_at_the_deadline_with_408() {
    let up = TestUpstream::start().await;
    let p = TestProxy::start_with(up.addr, LIMITS, |_| None).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let started = Instant::now();
    s.write_all(b"GET /public/x HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    // One header byte every 200 ms: each read is quick, only the total gives it away.
    for b in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if s.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if started.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let (text, closed) = read_all(&mut s, Duration::from_secs(3)).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains(r#"{"error":"request_timeout"}"#), "{text}");
    assert!(closed);
    assert!(up.forwarded().is_empty());

    // A connection that sends nothing is timed from accept.
    let mut idle = TcpStream::connect(p.addr).await.unwrap();
    let t = Instant::now();
    let (text, closed) = read_all(&mut idle, Duration::from_secs(3)).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(closed && t.elapsed() < Duration::from_secs(3));
    let metrics = p
        .metrics_with(r#"edge_proxy_connections_refused_total{reason="header_timeout"} 2"#)
        .await;
    assert!(
        metrics.contains(r#"edge_proxy_connections_refused_total{reason="header_timeout"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn keep_alive_idle_time_and_slow_bodies_are_not_head_time() {
    let up = TestUpstream::start().await;
    let p = TestProxy::start_with(
        up.addr,
        &format!("{LIMITS}body_idle_timeout_ms = 5000\nbody_min_rate_bytes_per_sec = 0\n"),
        |_| None,
    )
    .await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    for round in 0..2 {
        // Idle on a kept-alive connection for longer than the head deadline, then a quick head.
        if round == 1 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        s.write_all(b"GET /public/x HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let n = s.read(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 200"), "round {round}: {text}");
    }
    // A body trickled over 2 s (longer than the head deadline) is the body timeouts' business.
    s.write_all(b"POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.write_all(b"x").await.unwrap();
    }
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(up.forwarded().last().unwrap().body, Some(10));
}

#[tokio::test]
async fn connections_over_the_per_ip_limit_are_refused_with_429() {
    let up = TestUpstream::start().await;
    // A longer head deadline so the held connections stay open for the whole test.
    let p = TestProxy::start_with(
        up.addr,
        "[limits]\nheader_timeout_ms = 20000\nmax_connections_per_ip = 3\n",
        |_| None,
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(p.addr).await.unwrap());
    }
    // The proxy counts a connection when it accepts it: wait until it has accepted all three.
    let open = p.metrics_with("edge_proxy_connections_open 3\n").await;
    assert!(open.contains("edge_proxy_connections_open 3\n"), "{open}");
    let mut fourth = TcpStream::connect(p.addr).await.unwrap();
    let _ = fourth
        .write_all(b"GET /public/x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    let (text, closed) = read_all(&mut fourth, Duration::from_secs(3)).await;
    assert!(text.starts_with("HTTP/1.1 429"), "{text}");
    assert!(text.contains("too_many_connections"), "{text}");
    assert!(closed);

    // Closing one frees its slot.
    drop(held.pop());
    let open = p.metrics_with("edge_proxy_connections_open 2\n").await;
    assert!(open.contains("edge_proxy_connections_open 2\n"), "{open}");
    let r = p.get("/public/x", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        up.forwarded().len(),
        1,
        "the refused request never reached the upstream"
    );
    let metrics = p
        .metrics_with(r#"edge_proxy_connections_refused_total{reason="per_ip_limit"} 1"#)
        .await;
    assert!(
        metrics.contains(r#"edge_proxy_connections_refused_total{reason="per_ip_limit"} 1"#),
        "{metrics}"
    );
}
