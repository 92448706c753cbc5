//! One contract suite for every `AttemptStore`: memory always, Redis with `REDIS_URL`. Time is injected
//! (the Redis scripts take the caller's clock), except that Redis expires keys on its own clock, so the
//! suite never waits for a lease or a ban to run out.

use std::sync::Arc;
use std::time::Duration;

use edge_proxy::throttle::{
    AttemptStore, Begin, MemoryAttemptStore, Outcome, RedisAttemptStore, ThrottlePolicy,
    ThrottleReason,
};
use secrecy::SecretString;

use crate::harness::{redis_url, RedisPrefix};

fn policy() -> ThrottlePolicy {
    ThrottlePolicy {
        ip_max_failures: 12,
        ..ThrottlePolicy::default()
    }
}

fn throttled(b: Begin) -> Option<(ThrottleReason, i64)> {
    match b {
        Begin::Allowed => None,
        Begin::Throttled {
            reason,
            retry_after_ms,
        } => Some((reason, retry_after_ms)),
    }
}

/// One failed attempt: begin (must be allowed) and finish with a failure.
async fn fail(s: &dyn AttemptStore, account: &str, ip: &str, id: &str, now: i64) {
    assert_eq!(
        s.begin(account, ip, id, now).await.unwrap(),
        Begin::Allowed,
        "{account} {id}"
    );
    s.finish(account, ip, id, Outcome::Failure, now)
        .await
        .unwrap();
}

async fn check_attempt_store(s: Arc<dyn AttemptStore>, t0: i64) {
    let s = s.as_ref();
    let ip = "198.51.100.7";

    // One verification in flight per account.
    assert_eq!(
        s.begin("a@example.com", ip, "r1", t0).await.unwrap(),
        Begin::Allowed
    );
    let (reason, _) = throttled(s.begin("a@example.com", ip, "r2", t0).await.unwrap()).unwrap();
    assert_eq!(reason, ThrottleReason::InFlight);
    assert_eq!(
        s.begin("b@example.com", ip, "r3", t0).await.unwrap(),
        Begin::Allowed,
        "other accounts are independent"
    );
    s.finish("b@example.com", ip, "r3", Outcome::Abandoned, t0)
        .await
        .unwrap();
    let done = s
        .finish("a@example.com", ip, "r1", Outcome::Failure, t0)
        .await
        .unwrap();
    assert_eq!(done.state.fail_count, 1);
    assert!(!done.blocked_now);

    // Backoff from the third failure, with the remaining wait.
    fail(s, "a@example.com", ip, "r4", t0 + 1).await;
    assert_eq!(
        s.begin("a@example.com", ip, "r5", t0 + 2).await.unwrap(),
        Begin::Allowed
    );
    let done = s
        .finish("a@example.com", ip, "r5", Outcome::Failure, t0 + 2)
        .await
        .unwrap();
    assert!(done.blocked_now);
    assert_eq!(
        (done.state.fail_count, done.state.blocked_until_ms),
        (3, t0 + 2 + 60_000)
    );
    let (reason, wait) = throttled(
        s.begin("a@example.com", ip, "r6", t0 + 10_002)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!((reason, wait), (ThrottleReason::Backoff, 50_000));
    assert_eq!(
        s.account("a@example.com", t0 + 10_002)
            .await
            .unwrap()
            .fail_count,
        3,
        "no counting while blocked"
    );

    // Success clears only its own account.
    fail(s, "c@example.com", ip, "r7", t0).await;
    assert_eq!(
        s.begin("d@example.com", ip, "r8", t0).await.unwrap(),
        Begin::Allowed
    );
    s.finish("d@example.com", ip, "r8", Outcome::Success, t0)
        .await
        .unwrap();
    assert_eq!(s.account("c@example.com", t0).await.unwrap().fail_count, 1);
    assert_eq!(
        s.begin("c@example.com", ip, "r9", t0).await.unwrap(),
        Begin::Allowed
    );
    s.finish("c@example.com", ip, "r9", Outcome::Success, t0)
        .await
        .unwrap();
    assert_eq!(s.account("c@example.com", t0).await.unwrap().fail_count, 0);

    // Lock at max_failures, answered like the longest backoff; unlock clears it.
    let mut now = t0 + 120_000;
    for i in 0..10 {
        let st = s.account("e@example.com", now).await.unwrap();
        now = now.max(st.blocked_until_ms);
        fail(s, "e@example.com", "203.0.113.50", &format!("e{i}"), now).await;
    }
    let st = s.account("e@example.com", now).await.unwrap();
    assert!(st.locked, "{st:?}");
    let (reason, wait) = throttled(
        s.begin("e@example.com", "203.0.113.51", "e10", now + 86_400_000)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!((reason, wait), (ThrottleReason::Locked, 3_600_000));
    s.unlock("e@example.com").await.unwrap();
    assert_eq!(s.account("e@example.com", now).await.unwrap().fail_count, 0);
    assert_eq!(
        s.begin("e@example.com", "203.0.113.52", "e11", now)
            .await
            .unwrap(),
        Begin::Allowed
    );

    // Per-IP failures across accounts ban the IP, whatever account comes next.
    let sprayer = "192.0.2.99";
    for i in 0..12 {
        fail(
            s,
            &format!("victim{i}@example.com"),
            sprayer,
            &format!("s{i}"),
            t0,
        )
        .await;
    }
    let (reason, _) = throttled(
        s.begin("fresh@example.com", sprayer, "s12", t0)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(reason, ThrottleReason::IpBanned);
    assert_eq!(
        s.begin("fresh@example.com", "192.0.2.100", "s13", t0)
            .await
            .unwrap(),
        Begin::Allowed,
        "other IPs are not banned"
    );
}

async fn check_ip_rate(s: Arc<dyn AttemptStore>, t0: i64) {
    let ip = "192.0.2.200";
    for i in 0..30 {
        let b = s
            .begin(&format!("rate{i}@example.com"), ip, &format!("q{i}"), t0)
            .await
            .unwrap();
        assert_eq!(b, Begin::Allowed, "request {i} of the burst");
        s.finish(
            &format!("rate{i}@example.com"),
            ip,
            &format!("q{i}"),
            Outcome::Success,
            t0,
        )
        .await
        .unwrap();
    }
    let (reason, wait) =
        throttled(s.begin("rate-x@example.com", ip, "qx", t0).await.unwrap()).unwrap();
    assert_eq!(
        (reason, wait),
        (ThrottleReason::IpRate, 2_000),
        "successes count towards the rate"
    );
}

#[tokio::test]
async fn memory_attempt_store_meets_the_contract() {
    let now = {
        use edge_proxy::clock::Clock as _;
        edge_proxy::clock::SystemClock.now_ms().get()
    };
    check_attempt_store(Arc::new(MemoryAttemptStore::new(policy())), now).await;
    check_ip_rate(Arc::new(MemoryAttemptStore::new(policy())), now).await;
}

#[tokio::test]
async fn redis_attempt_store_meets_the_contract() {
    let Some(url) = redis_url() else { return };
    let guard = RedisPrefix::new(url.clone());
    let store = |prefix: String| {
        Arc::new(
            RedisAttemptStore::new(
                &SecretString::from(url.clone()),
                &prefix,
                Duration::from_secs(2),
                policy(),
            )
            .unwrap(),
        )
    };
    let now = {
        use edge_proxy::clock::Clock as _;
        edge_proxy::clock::SystemClock.now_ms().get()
    };
    check_attempt_store(store(guard.prefix.clone()), now).await;
    check_ip_rate(store(format!("{}rate:", guard.prefix)), now).await;

    // Account keys never hold the raw email.
    let mut c = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", guard.prefix))
        .query(&mut c)
        .unwrap();
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|k| !k.contains("@example.com")), "{keys:?}");
}
