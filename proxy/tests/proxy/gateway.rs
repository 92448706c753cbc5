//! Black-box tests of the gateway: routing, identity stripping, sessions, failure answers.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    redis_stores, redis_url, user_id_for, RedisPrefix, TestProxy, TestUpstream, ADMIN_TOKEN,
    IDENTITY_SECRET,
};

#[track_caller]
fn assert_json_error(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &str,
    want: u16,
    code: &str,
) {
    assert_eq!(status, want, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "no-store");
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["error"], code, "{body}");
}

async fn parts(r: reqwest::Response) -> (u16, reqwest::header::HeaderMap, String) {
    (
        r.status().as_u16(),
        r.headers().clone(),
        r.text().await.unwrap(),
    )
}

#[tokio::test]
async fn unknown_and_internal_paths_are_404_at_the_edge_and_never_reach_the_upstream() {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(up.addr).await;
    for path in [
        "/nope",
        "/metrics",
        "/admin/users/x/revoke-all",
        "/internal/credentials/verify",
        "/todosx",
        "/",
    ] {
        let (s, h, b) = parts(proxy.get(path, None).await).await;
        assert_json_error(s, &h, &b, 404, "not_found");
    }
    let (s, h, b) = parts(
        proxy
            .get("/public/../internal/credentials/verify", None)
            .await,
    )
    .await;
    assert!(s == 400 || s == 404, "{s}");
    let _ = (h, b);
    assert_eq!(
        up.seen.count(),
        0,
        "nothing reached the upstream: {:?}",
        up.seen.all()
    );
}

#[tokio::test]
async fn client_sent_identity_headers_never_reach_the_upstream() {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(up.addr).await;
    let token = proxy.token("alice@example.com").await;
    let forged = [
        ("X-User-Id", "admin"),
        ("x_user_id", "admin"),
        ("X.User.Id", "admin"),
        ("X-User-Email", "root@example.com"),
        ("X-User-Roles", "admin"),
        ("X-Identity-Assertion", "forged.jwt.value"),
        ("x_identity_assertion", "forged"),
        ("X-Auth-Request-User", "admin"),
        ("X-Forwarded-For", "10.0.0.1"),
        ("X-Real-IP", "10.0.0.1"),
        ("Forwarded", "for=10.0.0.1"),
    ];
    for (path, token) in [("/public/x", None), ("/todos", Some(token.as_str()))] {
        let mut req = proxy.client.get(proxy.url(path));
        for (k, v) in forged {
            req = req.header(k, v);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        assert_eq!(req.send().await.unwrap().status(), 200, "{path}");
    }
    let seen = up.forwarded();
    assert_eq!(seen.len(), 2);
    let public = &seen[0].headers;
    for name in [
        "x-user-id",
        "x_user_id",
        "x.user.id",
        "x-user-email",
        "x-user-roles",
        "x-identity-assertion",
        "x_identity_assertion",
        "x-auth-request-user",
        "x-real-ip",
        "forwarded",
    ] {
        assert!(
            !public.contains_key(name),
            "{name} reached the upstream on a public route"
        );
    }
    assert_eq!(
        public["x-forwarded-for"], "127.0.0.1",
        "set from the connection, not the client"
    );
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path.as_str()),
        ("GET", "/todos")
    );
    let authed = &seen[1].headers;
    assert_eq!(authed.get_all("x-user-id").iter().count(), 1);
    assert_eq!(
        authed["x-user-id"],
        user_id_for("alice@example.com").as_str()
    );
    assert_eq!(authed["x-user-email"], "alice@example.com");
    assert!(
        !authed.contains_key("authorization"),
        "the token is never forwarded"
    );
    assert!(!authed.contains_key("x_user_id") && !authed.contains_key("x.user.id"));
    assert!(uuid::Uuid::parse_str(authed["x-request-id"].to_str().unwrap()).is_ok());

    // The assertion the upstream got verifies with the identity secret for exactly this request.
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD
        .decode(IDENTITY_SECRET)
        .unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_audience(&["todo"]);
    let a = jsonwebtoken::decode::<edge_proxy::tokens::assertion::AssertionClaims>(
        authed["x-identity-assertion"].to_str().unwrap(),
        &jsonwebtoken::DecodingKey::from_secret(&key),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(
        (a.sub.as_str(), a.htm.as_str(), a.htu.as_str()),
        (user_id_for("alice@example.com").as_str(), "GET", "/todos")
    );
    assert_eq!(a.exp - a.iat, 60);

    // The credential check carried the proxy's own service assertion, bound to that call.
    let check = up
        .seen
        .all()
        .into_iter()
        .find(|s| s.path == "/internal/credentials/verify")
        .unwrap();
    assert_eq!(
        check.headers["x-user-id"],
        edge_proxy::tokens::assertion::SERVICE_SUBJECT
    );
    let service = jsonwebtoken::decode::<edge_proxy::tokens::assertion::AssertionClaims>(
        check.headers["x-identity-assertion"].to_str().unwrap(),
        &jsonwebtoken::DecodingKey::from_secret(&key),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(
        (
            service.sub.as_str(),
            service.htm.as_str(),
            service.htu.as_str()
        ),
        ("edge-proxy", "POST", "/internal/credentials/verify")
    );
    assert!(service.exp - service.iat <= 60);
}

#[tokio::test]
async fn logout_revokes_only_the_presented_token() {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(up.addr).await;
    let first = proxy.token("bob@example.com").await;
    let second = proxy.token(" Bob@Example.com ").await;
    assert_eq!(proxy.get("/todos", Some(&first)).await.status(), 200);
    assert_eq!(proxy.post("/auth/logout", &first).await.status(), 204);
    assert_eq!(
        proxy.post("/auth/logout", &first).await.status(),
        204,
        "idempotent (RFC 7009)"
    );
    let r = proxy.get("/todos", Some(&first)).await;
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"test\", error=\"invalid_token\""
    );
    let (s, h, b) = parts(r).await;
    assert_json_error(s, &h, &b, 401, "invalid_token");
    assert_eq!(
        proxy.get("/todos", Some(&second)).await.status(),
        200,
        "the user's other token still works"
    );

    assert_eq!(proxy.post("/auth/logout-all", &second).await.status(), 204);
    assert_eq!(proxy.get("/todos", Some(&second)).await.status(), 401);
    assert_eq!(
        up.forwarded().len(),
        2,
        "refused requests were not forwarded"
    );
}

#[tokio::test]
async fn login_failures_and_missing_credentials_answer_per_rfc_6750() {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(up.addr).await;
    let (s, h, b) = parts(proxy.login("carol@example.com", "wrong").await).await;
    assert_json_error(s, &h, &b, 401, "invalid_credentials");
    let r = proxy.get("/todos", None).await;
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"test\"");
    let (s, h, b) = parts(r).await;
    assert_json_error(s, &h, &b, 401, "missing_token");
    // RFC 6750 3.1: another scheme is no usable credential, so the challenge has no `error`.
    for scheme in [
        "Basic dXNlcjpwYXNz",
        "Digest username=\"u\"",
        "Token abc",
        "Bearer",
    ] {
        let r = proxy
            .client
            .get(proxy.url("/todos"))
            .header("authorization", scheme)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{scheme}");
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer realm=\"test\"",
            "{scheme}"
        );
        let (s, h, b) = parts(r).await;
        assert_json_error(s, &h, &b, 401, "missing_token");
    }
    let (s, h, b) = parts(proxy.get("/todos", Some("not.a.jwt")).await).await;
    assert_json_error(s, &h, &b, 401, "invalid_token");
    let token = proxy.token("carol@example.com").await;
    let r = proxy
        .client
        .get(proxy.url("/todos?access_token=x"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (s, h, b) = parts(r).await;
    assert_json_error(s, &h, &b, 400, "invalid_request");
    let r = proxy
        .client
        .get(proxy.url("/todos"))
        .header("authorization", format!("bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the scheme is case-insensitive");
    for body in [
        r#"{"email":"a@example.com"}"#,
        r#"{"email":"a@example.com","password":"x","password":"y"}"#,
        "[]",
        "{",
    ] {
        let r = proxy
            .client
            .post(proxy.url("/auth/login"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (s, h, b) = parts(r).await;
        assert_json_error(s, &h, &b, 400, "invalid_request");
    }
    let r = proxy
        .client
        .post(proxy.url("/auth/login"))
        .body("x".repeat(5000))
        .send()
        .await
        .unwrap();
    let (s, h, b) = parts(r).await;
    assert_json_error(s, &h, &b, 413, "payload_too_large");
    assert_eq!(
        serde_json::from_str::<Value>(&b).unwrap()["max_bytes"],
        4096
    );
}

#[tokio::test]
async fn an_oversized_declared_body_is_refused_before_the_upstream() {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(up.addr).await;
    let token = proxy.token("dora@example.com").await;
    let r = proxy
        .client
        .post(proxy.url("/todos"))
        .bearer_auth(&token)
        .body(vec![b'x'; 2048])
        .send()
        .await
        .unwrap();
    let (s, h, b) = parts(r).await;
    assert_json_error(s, &h, &b, 413, "payload_too_large");
    assert_eq!(
        serde_json::from_str::<Value>(&b).unwrap()["max_bytes"],
        1024
    );
    assert_eq!(up.forwarded().len(), 0);
}

#[tokio::test]
async fn a_dead_upstream_gives_502_but_never_makes_the_proxy_unready() {
    // DESIGN.md 7.1: one dead service behind a shared proxy must not take the proxy out of rotation
    // for the others; its health is in /readyz's body and in the healthy-peers gauge.
    let up = TestUpstream::start().await;
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], crate::harness::free_port()));
    let extra = format!(
        r#"
[upstreams.billing]
peers = ["{dead}"]
health_check_interval_ms = 200
connect_timeout_ms = 500
[[routes]]
name = "billing"
prefix = "/billing"
upstream = "billing"
auth = "none"
"#
    );
    let proxy = TestProxy::start_with(up.addr, &extra, |_| None).await;
    let (s, h, b) = parts(proxy.get("/billing/x", None).await).await;
    assert_json_error(s, &h, &b, 502, "bad_gateway");
    // Once the health check has taken the dead peer out, the body says so; readiness stays 200.
    let mut body = serde_json::Value::Null;
    for _ in 0..50 {
        let r = proxy
            .client
            .get(proxy.admin_url("/readyz"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "a dead upstream made the proxy unready");
        body = r.json().await.unwrap();
        if body["upstreams"]["billing"]["healthy_peers"] == 0
            && body["upstreams"]["todo"]["healthy_peers"] == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["store"], "ok", "{body}");
    assert_eq!(
        body["upstreams"]["billing"],
        serde_json::json!({"healthy_peers": 0, "peers": 1}),
        "{body}"
    );
    assert_eq!(
        body["upstreams"]["todo"],
        serde_json::json!({"healthy_peers": 1, "peers": 1}),
        "{body}"
    );
    let text = proxy
        .metrics_with(r#"edge_proxy_upstream_healthy_peers{upstream="billing"} 0"#)
        .await;
    assert!(
        text.contains(r#"edge_proxy_upstream_healthy_peers{upstream="todo"} 1"#),
        "{text}"
    );
    assert_eq!(proxy.get("/public/x", None).await.status(), 200);
    assert_eq!(
        proxy
            .client
            .get(proxy.admin_url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn the_upstream_server_version_is_not_shown_and_metrics_are_admin_only() {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(up.addr).await;
    let r = proxy.get("/public/x", None).await;
    assert!(r.headers().get("server").is_none());
    assert!(r.headers().get("x-request-id").is_some());
    let not_found = proxy.get("/nowhere", None).await;
    for h in [r.headers(), not_found.headers()] {
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-frame-options"], "DENY");
        assert!(
            h.get("strict-transport-security").is_none(),
            "HSTS only when configured for TLS"
        );
        assert!(h.get("server").is_none());
    }
    let counted = r#"edge_proxy_requests_total{method="GET",route="public",status="2xx"} 1"#;
    let text = proxy.metrics_with(counted).await;
    assert!(text.contains(counted), "{text}");
    assert_eq!(proxy.get("/metrics", None).await.status(), 404);
}

#[tokio::test]
async fn admin_revoke_all_needs_the_admin_token_and_ends_every_session() {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(up.addr).await;
    let token = proxy.token("erin@example.com").await;
    let url = format!(
        "http://{}/admin/users/{}/revoke-all",
        proxy.admin,
        user_id_for("erin@example.com")
    );
    assert_eq!(proxy.client.post(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        proxy
            .client
            .post(&url)
            .bearer_auth("wrong-token-wrong-token-wrong-token")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(proxy.get("/todos", Some(&token)).await.status(), 200);
    assert_eq!(
        proxy
            .client
            .post(&url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(proxy.get("/todos", Some(&token)).await.status(), 401);
}

#[tokio::test]
async fn a_logout_through_one_proxy_is_honoured_by_another_sharing_redis() {
    let Some(url) = redis_url() else { return };
    let guard = RedisPrefix::new(url.clone());
    let up = TestUpstream::start().await;
    let shared = |c: &edge_proxy::Config| Some(redis_stores(&url, &guard.prefix, c));
    let a = TestProxy::start_with(up.addr, "", shared).await;
    let b = TestProxy::start_with(up.addr, "", shared).await;
    let token = a.token("fay@example.com").await;
    let other = b.token("fay@example.com").await;
    assert_eq!(
        b.get("/todos", Some(&token)).await.status(),
        200,
        "a token minted by A works at B"
    );
    assert_eq!(a.post("/auth/logout", &token).await.status(), 204);
    assert_eq!(
        b.get("/todos", Some(&token)).await.status(),
        401,
        "B honours A's logout on the very next request"
    );
    assert_eq!(a.get("/todos", Some(&other)).await.status(), 200);
}

#[tokio::test]
async fn an_unreachable_store_fails_closed_with_503_but_public_routes_work() {
    let up = TestUpstream::start().await;
    let dead = format!("redis://127.0.0.1:{}", crate::harness::free_port());
    let proxy = TestProxy::start_with(up.addr, "", |c| Some(redis_stores(&dead, "x:", c))).await;
    let r = proxy
        .login("gus@example.com", crate::harness::PASSWORD)
        .await;
    assert_eq!(r.headers()["retry-after"], "5");
    let (s, h, b) = parts(r).await;
    assert_json_error(s, &h, &b, 503, "unavailable");
    assert_eq!(proxy.get("/public/x", None).await.status(), 200);
    assert_eq!(
        proxy
            .client
            .get(format!("http://{}/readyz", proxy.admin))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
}

#[tokio::test]
async fn trace_context_is_continued_or_started_towards_the_upstream() {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(up.addr).await;
    let client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = proxy
        .client
        .get(proxy.url("/public/a"))
        .header("traceparent", client)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = proxy
        .client
        .get(proxy.url("/public/b"))
        .header("traceparent", "junk")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = up.forwarded();
    let continued = seen[0].headers["traceparent"].to_str().unwrap();
    assert!(
        continued.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{continued}"
    );
    assert_ne!(continued, client, "the proxy's hop gets its own span id");
    let started = seen[1].headers["traceparent"].to_str().unwrap();
    let parts: Vec<&str> = started.split('-').collect();
    assert_eq!(
        (parts.len(), parts[1].len(), parts[2].len()),
        (4, 32, 16),
        "{started}"
    );
    assert_eq!(seen[1].headers.get_all("traceparent").iter().count(), 1);
}
