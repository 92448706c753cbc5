//! Login throttling through the real proxy: what the client sees, and what reached the upstream.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    redis_stores, redis_url, RedisPrefix, TestProxy, TestUpstream, ADMIN_TOKEN, PASSWORD,
};

/// Seconds as the time unit (the test profile's scale): blocks of 1, 2, 4 … s.
const FAST: &str = "[login]\nbackoff_base_seconds = 1\nmax_wait_seconds = 60\n";

async fn attempt(p: &TestProxy, email: &str, password: &str) -> (u16, Option<String>, String) {
    let r = p.login(email, password).await;
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), retry, r.text().await.unwrap())
}

#[tokio::test]
async fn backoff_starts_at_the_third_failure_and_refuses_even_the_right_password() {
    let up = TestUpstream::start().await;
    let p = TestProxy::start_with(up.addr, FAST, |_| None).await;
    for _ in 0..2 {
        assert_eq!(attempt(&p, "ann@example.com", "wrong").await.0, 401);
    }
    assert_eq!(
        attempt(&p, "ann@example.com", "wrong").await.0,
        401,
        "the third failure is still checked"
    );
    let checks = up.verifications();
    assert_eq!(checks, 3);
    let (s, retry, body) = attempt(&p, "ann@example.com", PASSWORD).await;
    assert_eq!((s, retry.as_deref()), (429, Some("1")), "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        serde_json::json!({"error": "too_many_attempts"})
    );
    assert_eq!(
        up.verifications(),
        checks,
        "the credential check was not called while blocked"
    );
    // After the block: the 4th failure doubles it.
    p.clock.advance(Duration::from_millis(1100));
    assert_eq!(attempt(&p, "ann@example.com", "wrong").await.0, 401);
    let (s, retry, _) = attempt(&p, "ann@example.com", PASSWORD).await;
    assert_eq!((s, retry.as_deref()), (429, Some("2")));
}

#[tokio::test]
async fn a_success_clears_the_account_but_not_another_accounts_counters() {
    let up = TestUpstream::start().await;
    let p = TestProxy::start(up.addr).await;
    assert_eq!(attempt(&p, "victim@example.com", "wrong").await.0, 401);
    assert_eq!(attempt(&p, "victim@example.com", "wrong").await.0, 401);
    assert_eq!(
        attempt(&p, "attacker@example.com", PASSWORD).await.0,
        200,
        "the attacker's own valid login"
    );
    assert_eq!(attempt(&p, "victim@example.com", "wrong").await.0, 401);
    assert_eq!(
        attempt(&p, "victim@example.com", PASSWORD).await.0,
        429,
        "the victim's count was not reset"
    );
    assert_eq!(attempt(&p, "carl@example.com", "wrong").await.0, 401);
    assert_eq!(attempt(&p, "carl@example.com", "wrong").await.0, 401);
    assert_eq!(attempt(&p, "carl@example.com", PASSWORD).await.0, 200);
    assert_eq!(
        attempt(&p, "carl@example.com", "wrong").await.0,
        401,
        "success cleared carl's failures"
    );
    assert_eq!(attempt(&p, "carl@example.com", "wrong").await.0, 401);
}

#[tokio::test]
async fn case_and_whitespace_variants_share_one_counter() {
    let up = TestUpstream::start().await;
    let p = TestProxy::start(up.addr).await;
    for email in ["Dana@Example.com", " dana@example.com ", "DANA@EXAMPLE.COM"] {
        assert_eq!(attempt(&p, email, "wrong").await.0, 401);
    }
    assert_eq!(attempt(&p, "dana@example.com", PASSWORD).await.0, 429);
}

#[tokio::test]
async fn unknown_accounts_are_throttled_exactly_like_existing_ones() {
    let up = TestUpstream::start().await;
    let p = TestProxy::start(up.addr).await;
    let mut answers = Vec::new();
    for email in ["exists@example.com", "nobody-at-all@example.com"] {
        for _ in 0..3 {
            assert_eq!(attempt(&p, email, "wrong").await.0, 401);
        }
        let r = p.login(email, "wrong").await;
        let mut headers: Vec<(String, String)> = r
            .headers()
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "x-request-id" | "date"))
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        answers.push((r.status().as_u16(), headers, r.text().await.unwrap()));
    }
    assert_eq!(answers[0].0, 429);
    assert_eq!(
        answers[0], answers[1],
        "byte-identical apart from the request id and date"
    );
    assert!(!answers[0].2.contains("lock") && !answers[0].2.contains("exist"));
}

#[tokio::test]
async fn the_tenth_failure_locks_until_an_admin_unlocks() {
    let up = TestUpstream::start().await;
    // No backoff before the lock, so the test does not wait through the doubling.
    let p = TestProxy::start_with(up.addr, "[login]\nbackoff_after = 10\n", |_| None).await;
    for _ in 0..10 {
        assert_eq!(attempt(&p, "eve@example.com", "wrong").await.0, 401);
    }
    let (s, retry, _) = attempt(&p, "eve@example.com", PASSWORD).await;
    assert_eq!(
        (s, retry.as_deref()),
        (429, Some("3600")),
        "a lock answers like the longest backoff"
    );
    let status = p
        .client
        .get(p.admin_url("/admin/accounts/Eve@Example.com"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let v: Value = status.json().await.unwrap();
    assert_eq!(
        (v["failures"].as_u64(), v["locked"].as_bool()),
        (Some(10), Some(true)),
        "{v}"
    );
    let unlock = p.admin_url("/admin/accounts/eve@example.com/unlock");
    assert_eq!(p.client.post(&unlock).send().await.unwrap().status(), 401);
    assert_eq!(
        p.client
            .post(&unlock)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        p.client
            .post(&unlock)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        204,
        "idempotent"
    );
    assert_eq!(attempt(&p, "eve@example.com", PASSWORD).await.0, 200);
    let metrics = p
        .client
        .get(p.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("edge_proxy_lockouts_total 1"), "{metrics}");
    assert!(
        metrics.contains("edge_proxy_login_verifications_total 11"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"edge_proxy_login_attempts_total{result="locked"} 1"#),
        "{metrics}"
    );
}

async fn fifty_parallel_wrong_attempts(p: &TestProxy) -> Vec<u16> {
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let client = p.client.clone();
        let url = p.url("/auth/login");
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&serde_json::json!({"email": "frank@example.com", "password": "wrong"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses
}

#[tokio::test]
async fn fifty_parallel_wrong_attempts_cause_at_most_three_credential_checks() {
    let up = TestUpstream::start().await;
    let p = TestProxy::start_with(
        up.addr,
        "[login.ip]\nrate_per_minute = 1000\nmax_failures = 1000\n",
        |_| None,
    )
    .await;
    let statuses = fifty_parallel_wrong_attempts(&p).await;
    let refused = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        up.verifications() <= 3,
        "{} checks reached the upstream",
        up.verifications()
    );
    assert_eq!(refused, up.verifications(), "every check is one 401");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 50 - refused);
}

#[tokio::test]
async fn fifty_parallel_attempts_through_two_proxies_on_redis_cause_at_most_three_checks() {
    let Some(url) = redis_url() else { return };
    let guard = RedisPrefix::new(url.clone());
    let up = TestUpstream::start().await;
    let extra = "[login.ip]\nrate_per_minute = 1000\nmax_failures = 1000\n";
    let a = TestProxy::start_with(up.addr, extra, |c| {
        Some(redis_stores(&url, &guard.prefix, c))
    })
    .await;
    let b = TestProxy::start_with(up.addr, extra, |c| {
        Some(redis_stores(&url, &guard.prefix, c))
    })
    .await;
    let (sa, sb) = tokio::join!(
        fifty_parallel_wrong_attempts(&a),
        fifty_parallel_wrong_attempts(&b)
    );
    let refused = sa.iter().chain(&sb).filter(|s| **s == 401).count();
    assert!(
        up.verifications() <= 3,
        "{} checks reached the upstream",
        up.verifications()
    );
    assert_eq!(refused, up.verifications());
    // The lock state is shared: unlock through one proxy, and the other lets the user in.
    let unlock = a.admin_url("/admin/accounts/frank@example.com/unlock");
    assert_eq!(
        a.client
            .post(&unlock)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(attempt(&b, "frank@example.com", PASSWORD).await.0, 200);
}

#[tokio::test]
async fn password_spraying_from_one_ip_is_banned_and_spoofed_forwarding_does_not_help() {
    let up = TestUpstream::start().await;
    let p = TestProxy::start_with(up.addr, "[login.ip]\nmax_failures = 5\n", |_| None).await;
    for i in 0..5 {
        let r = p
            .client
            .post(p.url("/auth/login"))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .json(&serde_json::json!({"email": format!("user{i}@example.com"), "password": "Summer2026!"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let checks = up.verifications();
    let r = p
        .client
        .post(p.url("/auth/login"))
        .header("x-forwarded-for", "198.51.100.1")
        .json(&serde_json::json!({"email": "new-target@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        429,
        "the IP is banned, whatever X-Forwarded-For says"
    );
    assert_eq!(r.headers()["retry-after"], "900");
    assert_eq!(up.verifications(), checks);
    let metrics = p
        .client
        .get(p.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("edge_proxy_ip_bans_total 1"), "{metrics}");
}

#[tokio::test]
async fn malformed_login_bodies_are_400_and_count_at_most_once() {
    let up = TestUpstream::start().await;
    let p = TestProxy::start(up.addr).await;
    for body in [
        r#"{"email":"gil@example.com","password":12345678}"#,
        r#"{"email":"gil@example.com","password":"x","extra":1}"#,
        r#"{"email":"gil@example.com","email":"gil@example.com","password":"a","password":"b"}"#,
    ] {
        let r = p
            .client
            .post(p.url("/auth/login"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    }
    assert_eq!(
        up.verifications(),
        0,
        "malformed bodies are never checked upstream"
    );
    let (s, _, _) = attempt(&p, "gil@example.com", PASSWORD).await;
    assert_eq!(
        s, 429,
        "three malformed bodies were three failures, not more"
    );
    let v: Value = p
        .client
        .get(p.admin_url("/admin/accounts/gil@example.com"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["failures"], 3);
}
