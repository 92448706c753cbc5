//! Every kind of request moves the metric it should, read from the parsed exposition.

use std::collections::HashMap;

use crate::harness::{TestProxy, TestUpstream};

/// Parsed Prometheus text: `name{k="v",…}` (labels sorted) → value.
struct Exposition(HashMap<String, f64>);

impl Exposition {
    fn parse(text: &str) -> Self {
        let mut map = HashMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let key = match series.split_once('{') {
                None => series.to_owned(),
                Some((name, labels)) => {
                    let labels = labels.strip_suffix('}').expect("closing brace");
                    let mut pairs: Vec<&str> = if labels.is_empty() {
                        vec![]
                    } else {
                        labels.split(',').collect()
                    };
                    pairs.sort_unstable();
                    format!("{name}{{{}}}", pairs.join(","))
                }
            };
            map.insert(key, value.parse().expect("numeric value"));
        }
        Self(map)
    }

    /// The value of `name` with exactly these labels (0 when absent).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        pairs.sort_unstable();
        let key = if pairs.is_empty() {
            name.to_owned()
        } else {
            format!("{name}{{{}}}", pairs.join(","))
        };
        self.0.get(&key).copied().unwrap_or(0.0)
    }
}

#[tokio::test]
async fn each_kind_of_request_moves_its_metrics() {
    let up = TestUpstream::start().await;
    let p = TestProxy::start(up.addr).await;
    let token = p.token("mia@example.com").await;
    assert_eq!(p.get("/public/x", None).await.status(), 200);
    assert_eq!(p.get("/todos", Some(&token)).await.status(), 200);
    assert_eq!(p.get("/todos", None).await.status(), 401);
    assert_eq!(p.get("/todos", Some("a.b.c")).await.status(), 401);
    let old = p.token("mia@example.com").await;
    assert_eq!(p.post("/auth/logout", &old).await.status(), 204);
    assert_eq!(p.get("/todos", Some(&old)).await.status(), 401);
    let big = p
        .client
        .post(p.url("/todos"))
        .bearer_auth(&token)
        .body(vec![0u8; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    assert_eq!(p.get("/public/a%2Fb", None).await.status(), 400);
    assert_eq!(p.get("/nowhere", None).await.status(), 404);

    // The last request is counted in pingora's logging phase, just after its response.
    let text = p.metrics_with(r#"route="none",status="4xx"} 2"#).await;
    let m = Exposition::parse(&text);
    let req = |route, method, status| {
        m.get(
            "edge_proxy_requests_total",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert_eq!(req("public", "GET", "2xx"), 1.0);
    assert_eq!(req("todos", "GET", "2xx"), 1.0);
    assert_eq!(req("todos", "GET", "4xx"), 3.0);
    assert_eq!(req("todos", "POST", "4xx"), 1.0);
    assert_eq!(req("login", "POST", "2xx"), 2.0);
    assert_eq!(
        req("none", "GET", "4xx"),
        2.0,
        "invalid path and unknown route"
    );
    assert_eq!(
        m.get(
            "edge_proxy_request_duration_seconds_count",
            &[("route", "public")]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "edge_proxy_upstream_duration_seconds_count",
            &[("upstream", "todo")]
        ),
        2.0
    );
    for (result, n) in [
        ("ok", 1.0),
        ("missing", 1.0),
        ("invalid", 1.0),
        ("revoked", 1.0),
    ] {
        assert_eq!(
            m.get("edge_proxy_auth_decisions_total", &[("result", result)]),
            n,
            "{result}"
        );
    }
    assert_eq!(
        m.get("edge_proxy_auth_failures_total", &[("reason", "revoked")]),
        1.0
    );
    assert_eq!(
        m.get("edge_proxy_login_attempts_total", &[("result", "success")]),
        2.0
    );
    assert_eq!(m.get("edge_proxy_login_verifications_total", &[]), 2.0);
    assert_eq!(m.get("edge_proxy_body_limit_rejections_total", &[]), 1.0);
    assert_eq!(
        m.get(
            "edge_proxy_framing_rejections_total",
            &[("reason", "invalid_path")]
        ),
        1.0
    );
    // A valid and a revoked token were looked up; the oversized POST was refused before auth.
    assert_eq!(
        m.get(
            "edge_proxy_store_duration_seconds_count",
            &[("op", "session_status")]
        ),
        2.0
    );
    assert_eq!(
        m.get(
            "edge_proxy_store_duration_seconds_count",
            &[("op", "login_begin")]
        ),
        2.0
    );
    assert_eq!(
        m.get("edge_proxy_upstream_healthy_peers", &[("upstream", "todo")]),
        1.0
    );
    assert_eq!(
        m.get("edge_proxy_requests_in_flight", &[]),
        0.0,
        "every request released its gauge"
    );
    // Sub-millisecond resolution: 50 µs and 500 µs are separate buckets.
    assert!(
        text.contains(r#"edge_proxy_request_duration_seconds_bucket{route="public",le="0.00005"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"edge_proxy_request_duration_seconds_bucket{route="public",le="0.0005"}"#)
    );
    // Labels never carry user input.
    assert!(
        !text.contains("mia@example.com")
            && !text.contains("127.0.0.1")
            && !text.contains("/nowhere")
    );
}

#[tokio::test]
async fn upstream_failures_are_counted_by_upstream() {
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], crate::harness::free_port()));
    let p = TestProxy::start(dead).await;
    assert_eq!(p.get("/public/x", None).await.status(), 502);
    // The request counter is written in `logging`, after the upstream error was counted: wait for it.
    let text = p.metrics_with(r#"route="public",status="5xx"} 1"#).await;
    let m = Exposition::parse(&text);
    assert_eq!(
        m.get("edge_proxy_upstream_errors_total", &[("upstream", "todo")]),
        1.0
    );
    assert_eq!(
        m.get(
            "edge_proxy_requests_total",
            &[("route", "public"), ("method", "GET"), ("status", "5xx")]
        ),
        1.0
    );
}
