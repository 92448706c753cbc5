//! Body limits as bytes stream (R-HTTP-2) and slow bodies (R-HTTP timeouts), over raw sockets.

use std::time::Duration;

use proptest::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::framing::raw;
use crate::harness::{TestProxy, TestUpstream};

const LIMIT: usize = 1024;

fn extra() -> String {
    format!(
        "[limits]\nbody_idle_timeout_ms = 400\nbody_min_rate_bytes_per_sec = 2000\nbody_min_rate_grace_ms = 600\n\n\
         [[routes]]\nname = \"upload\"\nprefix = \"/upload\"\nupstream = \"todo\"\nauth = \"none\"\nmethods = [\"POST\"]\nmax_body_bytes = {LIMIT}\n"
    )
}

/// A chunked request to `path` whose body is `total` bytes cut into the given chunk sizes (cycled).
fn chunked(path: &str, total: usize, sizes: &[usize]) -> Vec<u8> {
    let mut out = format!("POST {path} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").into_bytes();
    let mut left = total;
    for size in sizes.iter().cycle() {
        if left == 0 {
            break;
        }
        let n = (*size).clamp(1, left);
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend(std::iter::repeat_n(b'x', n));
        out.extend_from_slice(b"\r\n");
        left -= n;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[test]
fn chunked_bodies_are_limited_as_they_stream_whatever_the_chunking() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (up, proxy) = rt.block_on(async {
        let up = TestUpstream::start().await;
        let p = TestProxy::start_with(up.addr, &extra(), |_| None).await;
        (up, p)
    });
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    });
    let strategy = (
        prop_oneof![
            Just(LIMIT - 1),
            Just(LIMIT),
            Just(LIMIT + 1),
            1usize..(3 * LIMIT)
        ],
        proptest::collection::vec(1usize..700, 1..6),
    );
    runner
        .run(&strategy, |(total, sizes)| {
            // A unique path per case: an aborted upload's handler may record after the next case began.
            let path = format!("/upload/{}", uuid::Uuid::new_v4().simple());
            let a = rt.block_on(raw(proxy.addr, &chunked(&path, total, &sizes)));
            let arrived = up
                .forwarded()
                .into_iter()
                .find(|s| s.path == path)
                .and_then(|s| s.body);
            if total <= LIMIT {
                prop_assert_eq!(
                    a.status,
                    Some(200),
                    "{} bytes in {:?}: {}",
                    total,
                    sizes,
                    a.head
                );
                prop_assert_eq!(arrived, Some(total));
            } else {
                prop_assert!(
                    a.status.is_none_or(|s| s == 413),
                    "{} bytes: {}",
                    total,
                    a.head
                );
                prop_assert!(a.closed);
                // The upstream may have seen a partial body, never a complete one.
                prop_assert!(
                    arrived.is_none_or(|n| n < total),
                    "upstream got all {} bytes",
                    total
                );
            }
            Ok(())
        })
        .unwrap();
    drop(proxy);
}

#[tokio::test]
async fn an_oversized_declared_body_gets_413_before_any_is_read() {
    let up = TestUpstream::start().await;
    let p = TestProxy::start_with(up.addr, &extra(), |_| None).await;
    let a = raw(
        p.addr,
        format!(
            "POST /upload/x HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            LIMIT + 1
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(a.status, Some(413), "{}", a.head);
    assert!(a.closed);
    assert!(!a.head.contains("100 Continue"));
    assert!(a.head.to_ascii_lowercase().contains("connection: close"));
    assert_eq!(up.seen.count(), 0);
}

#[tokio::test]
async fn a_trickling_body_is_cut_at_the_minimum_rate() {
    let up = TestUpstream::start().await;
    let p = TestProxy::start_with(up.addr, &extra(), |_| None).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"POST /upload/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n")
        .await
        .unwrap();
    // 10 bytes every 100 ms: 100 B/s, well under the 2000 B/s floor once the 600 ms grace is over.
    let mut sent = 0;
    for _ in 0..15 {
        if s.write_all(&[b'x'; 10]).await.is_err() {
            break;
        }
        sent += 10;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Then the rest of the body at once: had the proxy not cut the request, the upstream would now
    // receive all 1000 bytes.
    let _ = s.write_all(&vec![b'x'; 1000 - sent]).await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::io::AsyncReadExt::read_to_end(&mut s, &mut rest),
    )
    .await;
    let text = String::from_utf8_lossy(&rest);
    // The answer may be lost to a reset (the client was still writing when the proxy closed), but
    // whatever arrived is the 408.
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "the slow body was not cut: {text}"
    );
    p.metrics_with(r#"edge_proxy_requests_total{method="POST",route="upload",status="4xx"} 1"#)
        .await;
    assert!(
        up.forwarded().iter().all(|s| s.body != Some(1000)),
        "the upstream got the whole body: {:?}",
        up.forwarded()
    );
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_cut_at_the_idle_timeout() {
    let up = TestUpstream::start().await;
    let p = TestProxy::start_with(up.addr, &extra(), |_| None).await;
    let a = raw(
        p.addr,
        b"POST /upload/x HTTP/1.1\r\nHost: a\r\nContent-Length: 500\r\n\r\nonly-a-few-bytes",
    )
    .await;
    assert_eq!(a.status, Some(408), "{}", a.head);
    assert!(a.closed, "{}", a.head);
    assert!(
        a.head.contains("request_timeout") || a.head.contains("Content-Type: application/json")
    );
    assert!(
        up.forwarded().iter().all(|s| s.body.is_none()),
        "{:?}",
        up.forwarded()
    );
}

/// `curl` must see the 413 every time, for a declared and for a chunked oversized upload (a proxy that
/// closes without reading can turn the answer into a reset).
#[tokio::test]
async fn curl_sees_the_413_thirty_times_out_of_thirty() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but curl is missing"
        );
        eprintln!("skipped: curl is not installed");
        return;
    }
    let up = TestUpstream::start().await;
    let p = TestProxy::start_with(up.addr, &extra(), |_| None).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big");
    std::fs::write(&file, vec![b'x'; 3 * 1024 * 1024]).unwrap();
    let url = p.url("/upload/x");
    for chunked in [false, true] {
        let mut seen = Vec::new();
        for _ in 0..30 {
            let mut cmd = tokio::process::Command::new("curl");
            cmd.args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "POST",
                "--data-binary",
            ])
            .arg(format!("@{}", file.display()))
            .arg(&url);
            if chunked {
                cmd.args(["-H", "Transfer-Encoding: chunked"]);
            }
            let out = cmd.output().await.unwrap();
            seen.push(String::from_utf8_lossy(&out.stdout).to_string());
        }
        let ok = seen.iter().filter(|c| *c == "413").count();
        assert_eq!(ok, 30, "chunked={chunked}: {seen:?}");
    }
    assert!(
        up.forwarded()
            .iter()
            .all(|s| s.body.is_none_or(|n| n <= LIMIT)),
        "no oversized body completed upstream"
    );
}
