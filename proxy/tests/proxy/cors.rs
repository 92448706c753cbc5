//! CORS through the real proxy: preflights answered at the edge, the policy's headers replace the
//! upstream's, `Vary: Origin` everywhere on a CORS route, unsafe cross-origin requests refused.

use reqwest::header::HeaderMap;

use crate::harness::{TestProxy, TestUpstream};

const CORS: &str = r#"
[cors.web]
allowed_origins = ["https://app.example.com", "https://*.example.org"]

[[routes]]
name = "api"
prefix = "/api"
upstream = "todo"
auth = "none"
methods = ["GET", "POST", "DELETE"]
cors = "web"
"#;

fn acx(h: &HeaderMap) -> Vec<String> {
    h.keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

fn varies_on_origin(h: &HeaderMap) -> bool {
    h.get_all("vary")
        .iter()
        .any(|v| v.to_str().unwrap().to_ascii_lowercase().contains("origin"))
}

async fn start() -> (TestUpstream, TestProxy) {
    let up = TestUpstream::start().await;
    let p = TestProxy::start_with(up.addr, CORS, |_| None).await;
    (up, p)
}

async fn preflight(
    p: &TestProxy,
    origin: &str,
    method: &str,
    headers: Option<&str>,
) -> reqwest::Response {
    let mut r = p
        .client
        .request(reqwest::Method::OPTIONS, p.url("/api/items"))
        .header("origin", origin)
        .header("access-control-request-method", method);
    if let Some(h) = headers {
        r = r.header("access-control-request-headers", h);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn an_allowed_preflight_is_answered_at_the_edge() {
    let (up, p) = start().await;
    let r = preflight(
        &p,
        "https://app.example.com",
        "POST",
        Some("Content-Type, authorization"),
    )
    .await;
    assert_eq!(r.status(), 204);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(
        h["access-control-allow-methods"],
        "GET, POST, PUT, PATCH, DELETE"
    );
    assert_eq!(
        h["access-control-allow-headers"],
        "authorization, content-type"
    );
    assert_eq!(h["access-control-max-age"], "600");
    assert!(h.get("access-control-allow-credentials").is_none());
    assert!(varies_on_origin(h));
    let r = preflight(&p, "https://deep.sub.example.org", "DELETE", None).await;
    assert_eq!(r.status(), 204);
    assert_eq!(up.seen.count(), 0, "preflights are never forwarded");
}

#[tokio::test]
async fn refused_preflights_get_403_without_cors_headers() {
    let (up, p) = start().await;
    for (origin, method, headers) in [
        ("https://evil.example", "POST", None),
        ("https://app.example.com", "PUT", None),
        ("https://app.example.com", "POST", Some("x-user-id")),
        (
            "https://app.example.com",
            "POST",
            Some("content-type, x-custom"),
        ),
        ("null", "GET", None),
    ] {
        let r = preflight(&p, origin, method, headers).await;
        assert_eq!(r.status(), 403, "{origin} {method} {headers:?}");
        assert!(
            acx(r.headers()).is_empty(),
            "{origin}: {:?}",
            acx(r.headers())
        );
        assert!(varies_on_origin(r.headers()));
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["error"],
            "cors_preflight_refused"
        );
    }
    assert_eq!(up.seen.count(), 0);
    let metrics = p.metrics_with("edge_proxy_cors_rejections_total 5").await;
    assert!(
        metrics.contains("edge_proxy_cors_rejections_total 5"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_policy_replaces_the_upstreams_cors_headers() {
    let (up, p) = start().await;
    let r = p
        .client
        .get(p.url("/api/items"))
        .header("origin", "https://a.example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://a.example.org",
        "not the upstream's *"
    );
    assert!(
        r.headers()
            .get("access-control-allow-credentials")
            .is_none(),
        "the upstream's credentials flag is dropped"
    );
    assert!(varies_on_origin(r.headers()));
    // No Origin: not a CORS request, but caches must still key on Origin.
    let r = p.client.get(p.url("/api/items")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(acx(r.headers()).is_empty(), "{:?}", acx(r.headers()));
    assert!(varies_on_origin(r.headers()));
    assert_eq!(up.forwarded().len(), 2);
}

#[tokio::test]
async fn disallowed_origins_are_never_reflected_and_cannot_use_unsafe_methods() {
    let (up, p) = start().await;
    let tricks = [
        "https://app.example.com.evil.net",
        "https://evilapp.example.com",
        "https://example.org",
        "null",
        "https://user@app.example.com",
        "https://app.example.com:8443",
        "http://app.example.com",
        "https://app.example.com/",
        "https://APP.example.com",
    ];
    for origin in tricks {
        let r = p
            .client
            .get(p.url("/api/items"))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "safe methods pass, bare: {origin}");
        assert!(
            acx(r.headers()).is_empty(),
            "{origin} reflected: {:?}",
            acx(r.headers())
        );
        let r = p
            .client
            .post(p.url("/api/items"))
            .header("origin", origin)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{origin}");
        assert!(acx(r.headers()).is_empty());
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["error"],
            "origin_not_allowed"
        );
    }
    let r = p
        .client
        .get(p.url("/api/items"))
        .header("origin", "https://app.example.com")
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert!(
        acx(r.headers()).is_empty(),
        "a repeated Origin is never allowed"
    );
    assert_eq!(
        up.forwarded().len(),
        tricks.len() + 1,
        "only the safe requests reached the upstream"
    );
    assert!(up.forwarded().iter().all(|s| s.method == "GET"));
}

#[tokio::test]
async fn proxy_errors_on_a_cors_route_carry_the_policy_headers() {
    let (_up, p) = start().await;
    let r = p
        .client
        .put(p.url("/api/items"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.com",
        "the browser can read the error"
    );
    assert!(varies_on_origin(r.headers()));
}
