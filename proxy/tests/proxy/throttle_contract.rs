//! One contract suite for every `AttemptStore`: memory always, Redis with `REDIS_URL`. Time is injected
//! (the Redis scripts take the caller's clock), except that Redis expires keys on its own clock, so the
//! suite never waits for a lease or a ban to run out.

use std::sync::Arc;
use std::time::Duration;

use edge_proxy::clock::UnixMillis;
use edge_proxy::throttle::{
    Attempt, AttemptStore, Begin, MemoryAttemptStore, Outcome, RedisAttemptStore, ThrottlePolicy,
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

fn at<'a>(account: &'a str, ip: &'a str, id: &'a str) -> Attempt<'a> {
    Attempt { account, ip, id }
}

fn ms(t: i64) -> UnixMillis {
    UnixMillis(t)
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
        s.begin(&at(account, ip, id), ms(now)).await.unwrap(),
        Begin::Allowed,
        "{account} {id}"
    );
    s.finish(&at(account, ip, id), Outcome::Failure, ms(now))
        .await
        .unwrap();
}

async fn check_attempt_store(s: Arc<dyn AttemptStore>, t0: i64) {
    let s = s.as_ref();
    let ip = "198.51.100.7";

    // One verification in flight per account.
    assert_eq!(
        s.begin(&at("a@example.com", ip, "r1"), ms(t0))
            .await
            .unwrap(),
        Begin::Allowed
    );
    let (reason, _) = throttled(
        s.begin(&at("a@example.com", ip, "r2"), ms(t0))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(reason, ThrottleReason::InFlight);
    assert_eq!(
        s.begin(&at("b@example.com", ip, "r3"), ms(t0))
            .await
            .unwrap(),
        Begin::Allowed,
        "other accounts are independent"
    );
    s.finish(&at("b@example.com", ip, "r3"), Outcome::Abandoned, ms(t0))
        .await
        .unwrap();
    let done = s
        .finish(&at("a@example.com", ip, "r1"), Outcome::Failure, ms(t0))
        .await
        .unwrap();
    assert_eq!(done.state.fail_count, 1);
    assert!(!done.blocked_now);

    // Backoff from the third failure, with the remaining wait.
    fail(s, "a@example.com", ip, "r4", t0 + 1).await;
    assert_eq!(
        s.begin(&at("a@example.com", ip, "r5"), ms(t0 + 2))
            .await
            .unwrap(),
        Begin::Allowed
    );
    let done = s
        .finish(&at("a@example.com", ip, "r5"), Outcome::Failure, ms(t0 + 2))
        .await
        .unwrap();
    assert!(done.blocked_now);
    assert_eq!(
        (done.state.fail_count, done.state.blocked_until_ms),
        (3, t0 + 2 + 60_000)
    );
    let (reason, wait) = throttled(
        s.begin(&at("a@example.com", ip, "r6"), ms(t0 + 10_002))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!((reason, wait), (ThrottleReason::Backoff, 50_000));
    assert_eq!(
        s.account("a@example.com", ms(t0 + 10_002))
            .await
            .unwrap()
            .fail_count,
        3,
        "no counting while blocked"
    );

    // Success clears only its own account.
    fail(s, "c@example.com", ip, "r7", t0).await;
    assert_eq!(
        s.begin(&at("d@example.com", ip, "r8"), ms(t0))
            .await
            .unwrap(),
        Begin::Allowed
    );
    s.finish(&at("d@example.com", ip, "r8"), Outcome::Success, ms(t0))
        .await
        .unwrap();
    assert_eq!(
        s.account("c@example.com", ms(t0)).await.unwrap().fail_count,
        1
    );
    assert_eq!(
        s.begin(&at("c@example.com", ip, "r9"), ms(t0))
            .await
            .unwrap(),
        Begin::Allowed
    );
    s.finish(&at("c@example.com", ip, "r9"), Outcome::Success, ms(t0))
        .await
        .unwrap();
    assert_eq!(
        s.account("c@example.com", ms(t0)).await.unwrap().fail_count,
        0
    );

    // Lock at max_failures, answered like the longest backoff; unlock clears it.
    let mut now = t0 + 120_000;
    for i in 0..10 {
        let st = s.account("e@example.com", ms(now)).await.unwrap();
        now = now.max(st.blocked_until_ms);
        fail(s, "e@example.com", "203.0.113.50", &format!("e{i}"), now).await;
    }
    let st = s.account("e@example.com", ms(now)).await.unwrap();
    assert!(st.locked, "{st:?}");
    let (reason, wait) = throttled(
        s.begin(
            &at("e@example.com", "203.0.113.51", "e10"),
            ms(now + 86_400_000),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    assert_eq!((reason, wait), (ThrottleReason::Locked, 3_600_000));
    s.unlock("e@example.com").await.unwrap();
    assert_eq!(
        s.account("e@example.com", ms(now))
            .await
            .unwrap()
            .fail_count,
        0
    );
    assert_eq!(
        s.begin(&at("e@example.com", "203.0.113.52", "e11"), ms(now))
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
        s.begin(&at("fresh@example.com", sprayer, "s12"), ms(t0))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(reason, ThrottleReason::IpBanned);
    assert_eq!(
        s.begin(&at("fresh@example.com", "192.0.2.100", "s13"), ms(t0))
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
            .begin(
                &at(&format!("rate{i}@example.com"), ip, &format!("q{i}")),
                ms(t0),
            )
            .await
            .unwrap();
        assert_eq!(b, Begin::Allowed, "request {i} of the burst");
        s.finish(
            &at(&format!("rate{i}@example.com"), ip, &format!("q{i}")),
            Outcome::Success,
            ms(t0),
        )
        .await
        .unwrap();
    }
    let (reason, wait) = throttled(
        s.begin(&at("rate-x@example.com", ip, "qx"), ms(t0))
            .await
            .unwrap(),
    )
    .unwrap();
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
