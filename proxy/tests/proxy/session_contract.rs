//! One contract suite for every `SessionStore`: memory always, Redis with `REDIS_URL`.

use std::sync::Arc;
use std::time::Duration;

use edge_proxy::clock::{Clock as _, SystemClock, UnixSecs};
use edge_proxy::session::{
    MemorySessionStore, RedisSessionStore, SessionStatus, SessionStore, TokenRef,
};
use secrecy::SecretString;

use crate::harness::{redis_url, RedisPrefix};

const NOW: UnixSecs = UnixSecs(1_900_000_000);

fn t<'a>(jti: &'a str, sub: &'a str, iat: UnixSecs) -> TokenRef<'a> {
    TokenRef { jti, sub, iat }
}

async fn check_session_store(s: Arc<dyn SessionStore>, now: UnixSecs) {
    use SessionStatus::{Active, Revoked};
    s.ping().await.unwrap();
    let exp = now + 900;
    s.insert(&t("j1", "alice", now), exp, now).await.unwrap();
    s.insert(&t("j2", "alice", now), exp, now).await.unwrap();
    s.insert(&t("j3", "bob", now), exp, now).await.unwrap();
    assert_eq!(s.status(&t("j1", "alice", now), now).await.unwrap(), Active);
    assert_eq!(
        s.status(&t("j1", "bob", now), now).await.unwrap(),
        Revoked,
        "bound to its sub"
    );
    assert_eq!(
        s.status(&t("unknown", "alice", now), now).await.unwrap(),
        Revoked
    );

    // Logout revokes one token, idempotently; others stay valid.
    s.revoke("j1", "alice").await.unwrap();
    s.revoke("j1", "alice").await.unwrap();
    assert_eq!(
        s.status(&t("j1", "alice", now), now).await.unwrap(),
        Revoked
    );
    assert_eq!(s.status(&t("j2", "alice", now), now).await.unwrap(), Active);
    s.revoke("j3", "alice").await.unwrap();
    assert_eq!(
        s.status(&t("j3", "bob", now), now).await.unwrap(),
        Active,
        "cannot revoke another user's token"
    );

    // Revoke-all: every token of the user, and any token issued before it.
    s.revoke_all("alice", now + 960, now).await.unwrap();
    assert_eq!(
        s.status(&t("j2", "alice", now), now).await.unwrap(),
        Revoked
    );
    s.insert(&t("j4", "alice", now), exp, now).await.unwrap();
    assert_eq!(
        s.status(&t("j4", "alice", now - 1), now).await.unwrap(),
        Revoked,
        "issued before revoke-all"
    );
    assert_eq!(
        s.status(&t("j4", "alice", now), now).await.unwrap(),
        Active,
        "issued at or after revoke-all"
    );
    assert_eq!(
        s.status(&t("j3", "bob", now), now).await.unwrap(),
        Active,
        "other users untouched"
    );

    // Admin revoke by jti.
    assert!(s.revoke_jti("j3").await.unwrap());
    assert!(!s.revoke_jti("j3").await.unwrap());
    assert_eq!(s.status(&t("j3", "bob", now), now).await.unwrap(), Revoked);

    // External tokens: a denylist per issuer, by jti and by the user's revoke-all time.
    let ext = |jti: &'static str, sub: &'static str, iat: UnixSecs| {
        let s = Arc::clone(&s);
        async move {
            s.external_status("idp", &t(jti, sub, iat), now)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        ext("e1", "carol", now).await,
        Active,
        "not denied: honoured"
    );
    s.deny("idp", "e1", now + 900, now).await.unwrap();
    s.deny("idp", "e1", now + 300, now).await.unwrap();
    assert_eq!(ext("e1", "carol", now).await, Revoked);
    assert_eq!(ext("e2", "carol", now).await, Active);
    assert_eq!(
        s.external_status("other-idp", &t("e1", "carol", now), now)
            .await
            .unwrap(),
        Active,
        "denylists are per issuer"
    );
    assert_eq!(
        s.status(&t("e1", "carol", now), now).await.unwrap(),
        Revoked,
        "a denied external jti is never on the own allowlist"
    );
    s.deny_user("idp", "carol", now + 3660, now).await.unwrap();
    assert_eq!(ext("e3", "carol", now - 1).await, Revoked, "issued before");
    assert_eq!(
        ext("e3", "carol", now).await,
        Revoked,
        "issued in the same second"
    );
    assert_eq!(ext("e3", "carol", now + 1).await, Active, "issued after");
    assert_eq!(
        ext("e3", "dave", now - 1).await,
        Active,
        "other users untouched"
    );
    assert_eq!(
        s.status(&t("j4", "carol", now - 1), now).await.unwrap(),
        Revoked,
        "unknown own jti stays refused"
    );
}

#[tokio::test]
async fn memory_store_meets_the_session_contract() {
    check_session_store(Arc::new(MemorySessionStore::new()), NOW).await;
}

#[tokio::test]
async fn memory_store_forgets_expired_tokens() {
    let s = MemorySessionStore::new();
    s.insert(&t("old", "u", NOW), NOW + 10, NOW).await.unwrap();
    assert_eq!(
        s.status(&t("old", "u", NOW), NOW + 11).await.unwrap(),
        SessionStatus::Revoked
    );
    for i in 0..1024 {
        s.insert(
            &t(&format!("j{i}"), "u", NOW + 1000),
            NOW + 1000 + 10,
            NOW + 1000,
        )
        .await
        .unwrap();
    }
    assert_eq!(s.len(), 1024, "the expired entry was swept, live ones kept");
}

#[tokio::test]
async fn redis_store_meets_the_session_contract_and_keys_expire_with_tokens() {
    let Some(url) = redis_url() else { return };
    let guard = RedisPrefix::new(url.clone());
    let store = RedisSessionStore::new(
        &SecretString::from(url.clone()),
        &guard.prefix,
        Duration::from_secs(2),
    )
    .unwrap();
    // Redis expires keys on its own clock, so the contract runs at the real time.
    let now = SystemClock.now();
    check_session_store(Arc::new(store), now).await;

    let mut c = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let ttl = |key: String, c: &mut redis::Connection| -> i64 {
        redis::cmd("TTL").arg(key).query(c).unwrap()
    };
    let jti_ttl = ttl(format!("{}jwt:jti:j4", guard.prefix), &mut c);
    assert!(
        (890..=900).contains(&jti_ttl),
        "jti key expires with the token: {jti_ttl}"
    );
    let set_ttl = ttl(format!("{}jwt:user:alice", guard.prefix), &mut c);
    assert!(
        (890..=900).contains(&set_ttl),
        "user set expires with its newest token: {set_ttl}"
    );
    let nbf_ttl = ttl(format!("{}jwt:user_nbf:alice", guard.prefix), &mut c);
    assert!(
        (950..=960).contains(&nbf_ttl),
        "revoke-all mark kept one token lifetime: {nbf_ttl}"
    );
    let deny_ttl = ttl(format!("{}jwt:ext:idp:deny:e1", guard.prefix), &mut c);
    assert!(
        (890..=900).contains(&deny_ttl),
        "a denied jti is kept until the longest revocation asked for, then expires: {deny_ttl}"
    );
    let ext_nbf_ttl = ttl(
        format!("{}jwt:ext:idp:user_nbf:carol", guard.prefix),
        &mut c,
    );
    assert!(
        (3650..=3660).contains(&ext_nbf_ttl),
        "external revoke-all mark kept the issuer's lifetime: {ext_nbf_ttl}"
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_reported_unavailable_within_the_timeout() {
    let port = crate::harness::free_port();
    let store = RedisSessionStore::new(
        &SecretString::from(format!("redis://127.0.0.1:{port}")),
        "x:",
        Duration::from_millis(200),
    )
    .unwrap();
    let started = std::time::Instant::now();
    assert!(store.status(&t("j", "u", NOW), NOW).await.is_err());
    assert!(store.ping().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
}
