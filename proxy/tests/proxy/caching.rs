//! The edge cache through the real proxy (DESIGN.md 7.2): per-user and shared entries, what is never
//! stored, invalidation by a user's writes on every replica (generations in Redis), one upstream
//! request for concurrent misses, 304s from the edge and revalidation with the upstream's `ETag`,
//! stale-while-revalidate, entries in Redis that every replica serves within each proxy's budget,
//! and a Redis restart that empties the cache without serving anything stale.

use std::sync::Arc;

use serde_json::Value;

use crate::harness::{redis_stores, redis_url, PrivateRedis, RedisPrefix, TestProxy, TestUpstream};

const ROUTES: &str = r#"
[[routes]]
name = "c"
prefix = "/c"
upstream = "todo"
[routes.cache]
mode = "per_user"
ttl_seconds = 300
invalidates = ["s"]

[[routes]]
name = "s"
prefix = "/s"
upstream = "todo"
[routes.cache]
mode = "shared"
ttl_seconds = 300

[[routes]]
name = "p"
prefix = "/p"
upstream = "todo"
auth = "none"
[routes.cache]
mode = "shared"
ttl_seconds = 300

[[routes]]
name = "r"
prefix = "/r"
upstream = "todo"
[routes.cache]
ttl_seconds = 0

[[routes]]
name = "w"
prefix = "/w"
upstream = "todo"
[routes.cache]
ttl_seconds = 0
stale_while_revalidate_seconds = 60
"#;

struct Answer {
    status: u16,
    cache: Option<String>,
    etag: Option<String>,
    body: Value,
}

async fn get(p: &TestProxy, path: &str, token: Option<&str>, inm: Option<&str>) -> Answer {
    let mut r = p.client.get(p.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(tag) = inm {
        r = r.header("if-none-match", tag);
    }
    let r = r.send().await.unwrap();
    let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
    let (status, cache, etag) = (r.status().as_u16(), h("cache-status"), h("etag"));
    let text = r.text().await.unwrap();
    Answer {
        status,
        cache,
        etag,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

/// Requests for `path` that reached the upstream.
fn upstream_saw(up: &TestUpstream, path: &str) -> usize {
    up.forwarded().iter().filter(|s| s.path == path).count()
}

async fn start() -> (TestUpstream, TestProxy) {
    let up = TestUpstream::start().await;
    let p = TestProxy::start_with(up.addr, ROUTES, |_| None).await;
    (up, p)
}

#[tokio::test]
async fn two_users_on_one_url_never_see_each_others_answer() {
    let (up, p) = start().await;
    let alice = p.token("alice@example.com").await;
    let bob = p.token("bob@example.com").await;
    let a1 = get(&p, "/c/x", Some(&alice), None).await;
    assert_eq!(a1.cache.as_deref(), Some("edge-proxy; fwd=miss; stored"));
    let a2 = get(&p, "/c/x", Some(&alice), None).await;
    assert_eq!(a2.cache.as_deref(), Some("edge-proxy; hit"));
    assert_eq!(a2.body, a1.body, "alice's entry");
    let b1 = get(&p, "/c/x", Some(&bob), None).await;
    assert_eq!(b1.cache.as_deref(), Some("edge-proxy; fwd=miss; stored"));
    assert_eq!(
        b1.body["user"],
        crate::harness::user_id_for("bob@example.com")
    );
    assert_eq!(get(&p, "/c/x", Some(&bob), None).await.body, b1.body);
    assert_eq!(upstream_saw(&up, "/c/x"), 2, "one fetch per user");

    // A new token of the same user shares the entry; a revoked token never gets it.
    let alice2 = p.token("alice@example.com").await;
    assert_eq!(get(&p, "/c/x", Some(&alice2), None).await.body, a1.body);
    let out = p.post("/auth/logout", &alice).await;
    assert_eq!(out.status(), 204);
    let revoked = get(&p, "/c/x", Some(&alice), None).await;
    assert_eq!(revoked.status, 401);
    assert_eq!(revoked.body["error"], "invalid_token");
    assert_eq!(get(&p, "/c/x", None, None).await.status, 401);

    // Shared mode: one entry for everyone.
    let s1 = get(&p, "/s/x", Some(&alice2), None).await;
    let s2 = get(&p, "/s/x", Some(&bob), None).await;
    assert_eq!(s2.cache.as_deref(), Some("edge-proxy; hit"));
    assert_eq!(s2.body, s1.body);
    assert_eq!(upstream_saw(&up, "/s/x"), 1);
    let m = p
        .metrics_with(r#"edge_proxy_cache_requests_total{result="hit",route="c"} 3"#)
        .await;
    assert!(
        m.contains(r#"edge_proxy_cache_requests_total{result="miss",route="c"} 2"#),
        "{m}"
    );
}

#[tokio::test]
async fn cookies_no_store_errors_and_shared_private_answers_are_never_stored() {
    let (up, p) = start().await;
    let t = p.token("carol@example.com").await;
    for path in [
        "/c/cookie",
        "/c/no-store",
        "/c/status-404",
        "/c/status-500",
        "/s/private",
    ] {
        for _ in 0..2 {
            let a = get(&p, path, Some(&t), None).await;
            assert_eq!(a.cache.as_deref(), Some("edge-proxy; fwd=miss"), "{path}");
        }
        assert_eq!(upstream_saw(&up, path), 2, "{path} was served from cache");
    }
    // `private` is fine for a per-user entry.
    get(&p, "/c/private", Some(&t), None).await;
    let a = get(&p, "/c/private", Some(&t), None).await;
    assert_eq!(a.cache.as_deref(), Some("edge-proxy; hit"));
    // Unsafe methods are never answered from cache.
    let r = p.post("/c/private", &t).await;
    assert!(r.headers().get("cache-status").is_none());
    assert_eq!(upstream_saw(&up, "/c/private"), 2);
}

#[tokio::test]
async fn a_write_is_seen_on_the_next_get_through_either_replica() {
    let Some(url) = redis_url() else {
        return;
    };
    let prefix = RedisPrefix::new(url.clone());
    let up = TestUpstream::start().await;
    let a = TestProxy::start_with(up.addr, ROUTES, |c| {
        Some(redis_stores(&url, &prefix.prefix, c))
    })
    .await;
    let b = TestProxy::start_with(up.addr, ROUTES, |c| {
        Some(redis_stores(&url, &prefix.prefix, c))
    })
    .await;
    let t = a.token("dave@example.com").await;
    for p in [&a, &b] {
        get(p, "/c/list", Some(&t), None).await;
        get(p, "/s/list", Some(&t), None).await;
        assert_eq!(
            get(p, "/c/list", Some(&t), None).await.cache.as_deref(),
            Some("edge-proxy; hit")
        );
    }
    // Dave writes through replica a: his entries (and the shared route his writes invalidate) are
    // gone on both replicas before the write's answer arrives.
    // The first read after it (on b) fetches again; the entries are in Redis, so a then serves the
    // one b stored under the new generation.
    assert_eq!(a.post("/c/item", &t).await.status(), 200);
    for (p, expected) in [
        (&b, "edge-proxy; fwd=miss; stored"),
        (&a, "edge-proxy; hit"),
    ] {
        for path in ["/c/list", "/s/list"] {
            let after = get(p, path, Some(&t), None).await;
            assert_eq!(after.cache.as_deref(), Some(expected), "{path}");
            assert_eq!(
                after.body["writes"], 1,
                "{path}: the answer after the write"
            );
        }
    }
    // Someone else's writes leave Dave's entries alone.
    let erin = b.token("erin@example.com").await;
    assert_eq!(b.post("/c/item", &erin).await.status(), 200);
    assert_eq!(
        get(&a, "/c/list", Some(&t), None).await.cache.as_deref(),
        Some("edge-proxy; hit")
    );
}

/// The edge cache's entries in Redis under `prefix`, each with its stored size (meta and body).
fn redis_entries(url: &str, prefix: &str) -> Vec<(String, usize)> {
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}cache:entry:*"))
        .query(&mut c)
        .unwrap();
    keys.into_iter()
        .map(|k| {
            let size: usize = ["i", "h", "b"]
                .iter()
                .map(|f| {
                    redis::cmd("HSTRLEN")
                        .arg(&k)
                        .arg(f)
                        .query::<usize>(&mut c)
                        .unwrap()
                })
                .sum();
            (k, size)
        })
        .collect()
}

#[tokio::test]
async fn on_redis_an_entry_stored_by_one_replica_is_served_by_the_other() {
    let Some(url) = redis_url() else {
        return;
    };
    let prefix = RedisPrefix::new(url.clone());
    let up = TestUpstream::start().await;
    let start = || {
        TestProxy::start_with(up.addr, ROUTES, |c| {
            Some(redis_stores(&url, &prefix.prefix, c))
        })
    };
    let (a, b) = (start().await, start().await);
    let t = a.token("frank@example.com").await;
    let stored = get(&a, "/c/list", Some(&t), None).await;
    assert_eq!(
        stored.cache.as_deref(),
        Some("edge-proxy; fwd=miss; stored")
    );
    assert_eq!(get(&a, "/p/list", None, None).await.status, 200);
    assert_eq!(
        redis_entries(&url, &prefix.prefix).len(),
        2,
        "one hash per entry"
    );
    let hit = get(&b, "/c/list", Some(&t), None).await;
    assert_eq!(hit.cache.as_deref(), Some("edge-proxy; hit"));
    assert_eq!(hit.body, stored.body);
    assert_eq!(
        get(&b, "/p/list", None, None).await.cache.as_deref(),
        Some("edge-proxy; hit")
    );
    assert_eq!(upstream_saw(&up, "/c/list"), 1, "replica b never asked");
    assert_eq!(upstream_saw(&up, "/p/list"), 1);
    // Another user on replica b still has nothing stored.
    let gina = b.token("gina@example.com").await;
    assert_eq!(
        get(&b, "/c/list", Some(&gina), None).await.cache.as_deref(),
        Some("edge-proxy; fwd=miss; stored")
    );
}

#[tokio::test]
async fn on_redis_a_proxy_never_keeps_more_entries_than_its_memory_budget() {
    let Some(url) = redis_url() else {
        return;
    };
    const BUDGET: usize = 4096;
    let prefix = RedisPrefix::new(url.clone());
    let up = TestUpstream::start().await;
    let routes =
        format!("{ROUTES}\n[cache]\nmax_memory_bytes = {BUDGET}\nmax_object_bytes = 2048\n");
    let p = TestProxy::start_with(up.addr, &routes, |c| {
        Some(redis_stores(&url, &prefix.prefix, c))
    })
    .await;
    // Distinct query strings are distinct entries: a client can ask for as many as it likes.
    for i in 0..40 {
        let a = get(&p, &format!("/p/list?page={i}"), None, None).await;
        assert_eq!(a.cache.as_deref(), Some("edge-proxy; fwd=miss; stored"));
        let held: usize = redis_entries(&url, &prefix.prefix)
            .iter()
            .map(|(_, n)| n)
            .sum();
        assert!(held <= BUDGET, "after {i}: {held} bytes in Redis");
    }
    let entries = redis_entries(&url, &prefix.prefix);
    assert!(
        (2..40).contains(&entries.len()),
        "older entries leave, newer stay: {}",
        entries.len()
    );
    // The newest is still there, the oldest is gone.
    assert_eq!(
        get(&p, "/p/list?page=39", None, None)
            .await
            .cache
            .as_deref(),
        Some("edge-proxy; hit")
    );
    assert_eq!(
        get(&p, "/p/list?page=0", None, None).await.cache.as_deref(),
        Some("edge-proxy; fwd=miss; stored")
    );
}

#[tokio::test]
async fn fifty_concurrent_cold_gets_make_one_upstream_request() {
    let (up, p) = start().await;
    let t = Arc::new(p.token("frank@example.com").await);
    let p = Arc::new(p);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (p, t) = (Arc::clone(&p), Arc::clone(&t));
            tokio::spawn(async move { get(&p, "/c/slow", Some(&t), None).await.status })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(upstream_saw(&up, "/c/slow"), 1);
}

#[tokio::test]
async fn a_client_304_comes_from_the_edge_and_never_stale_after_a_write() {
    let (up, p) = start().await;
    let t = p.token("gina@example.com").await;
    let first = get(&p, "/c/etag", Some(&t), None).await;
    let tag = first.etag.clone().unwrap();
    let again = get(&p, "/c/etag", Some(&t), Some(&tag)).await;
    assert_eq!(
        (again.status, again.cache.as_deref()),
        (304, Some("edge-proxy; hit"))
    );
    assert_eq!(
        upstream_saw(&up, "/c/etag"),
        1,
        "the 304 came from the edge"
    );
    // A write changes the upstream's tag: the old one gets the new answer, not a 304.
    assert_eq!(p.post("/c/etag", &t).await.status(), 200);
    let after = get(&p, "/c/etag", Some(&t), Some(&tag)).await;
    assert_eq!(after.status, 200);
    assert_ne!(after.etag.as_deref(), Some(tag.as_str()));
    assert_eq!(after.body["writes"], 1);
}

#[tokio::test]
async fn a_stale_entry_is_revalidated_with_the_upstreams_etag() {
    let (up, p) = start().await;
    revalidates_with_the_upstreams_etag(&up, &p).await;
}

#[tokio::test]
async fn on_redis_a_stale_entry_is_revalidated_in_place() {
    let Some(url) = redis_url() else {
        return;
    };
    let prefix = RedisPrefix::new(url.clone());
    let up = TestUpstream::start().await;
    let p = TestProxy::start_with(up.addr, ROUTES, |c| {
        Some(redis_stores(&url, &prefix.prefix, c))
    })
    .await;
    revalidates_with_the_upstreams_etag(&up, &p).await;
    assert_eq!(redis_entries(&url, &prefix.prefix).len(), 1);
}

/// A TTL-0 entry is stale at once: every read asks the upstream with the stored `ETag`, and each
/// 304 refreshes the stored meta while the body stays.
async fn revalidates_with_the_upstreams_etag(up: &TestUpstream, p: &TestProxy) {
    let t = p.token("hank@example.com").await;
    let first = get(p, "/r/etag", Some(&t), None).await;
    let second = get(p, "/r/etag", Some(&t), None).await;
    assert_eq!(
        second.cache.as_deref(),
        Some("edge-proxy; fwd=stale; fwd-status=304")
    );
    assert_eq!(
        (second.status, &second.body),
        (200, &first.body),
        "the stored body"
    );
    let seen = up.forwarded();
    let revalidation = seen.iter().rfind(|s| s.path == "/r/etag").unwrap();
    assert_eq!(
        revalidation
            .headers
            .get("if-none-match")
            .map(|v| v.to_str().unwrap()),
        first.etag.as_deref(),
        "the upstream was asked whether the entry is current, not for the body"
    );
    let third = get(p, "/r/etag", Some(&t), None).await;
    assert_eq!(third.cache, second.cache, "the revalidated entry is kept");
    assert_eq!(third.body, first.body);
    assert_eq!(upstream_saw(up, "/r/etag"), 3);
}

#[tokio::test]
async fn a_stale_entry_is_served_while_it_is_revalidated() {
    let (up, p) = start().await;
    let t = p.token("ivy@example.com").await;
    let first = get(&p, "/w/etag", Some(&t), None).await;
    let second = get(&p, "/w/etag", Some(&t), None).await;
    assert_eq!(
        second.cache.as_deref(),
        Some("edge-proxy; hit; detail=stale-while-revalidate")
    );
    assert_eq!(second.body, first.body);
    // The revalidation runs in the background; it reaches the upstream (bounded poll).
    for _ in 0..100 {
        if upstream_saw(&up, "/w/etag") >= 2 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no background revalidation reached the upstream");
}

#[tokio::test]
async fn a_redis_restart_empties_the_cache_and_serves_nothing_stale() {
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let url = redis.url();
    let up = TestUpstream::start().await;
    let p = TestProxy::start_with(up.addr, ROUTES, |c| Some(redis_stores(&url, "cache:", c))).await;
    get(&p, "/p/list", None, None).await;
    assert_eq!(
        get(&p, "/p/list", None, None).await.cache.as_deref(),
        Some("edge-proxy; hit")
    );
    redis.restart().await;
    // The generation is gone with Redis: whatever comes next (a bypass while the connection comes
    // back, then a miss under a fresh generation) is never the entry from before the restart.
    let mut stored = false;
    for _ in 0..100 {
        let a = get(&p, "/p/list", None, None).await;
        assert_eq!(a.status, 200, "the cache never breaks a request");
        assert_ne!(
            a.cache.as_deref(),
            Some("edge-proxy; hit"),
            "an entry from before the restart"
        );
        if a.cache.as_deref() == Some("edge-proxy; fwd=miss; stored") {
            stored = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(stored, "the cache never came back after the restart");
    assert_eq!(
        get(&p, "/p/list", None, None).await.cache.as_deref(),
        Some("edge-proxy; hit")
    );
}
