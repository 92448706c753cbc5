//! Crafted tokens through the real proxy: every one is refused with 401 `invalid_token` and nothing
//! reaches the upstream; a `jku` pointing at a listener gets no connection; a private Redis stopped and
//! restarted mid-test makes the proxy fail closed, then recover by itself.

use std::time::Duration;

use base64::Engine as _;

use crate::harness::{redis_stores, PrivateRedis, TestProxy, TestUpstream, JWT_KEY};

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac as _};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

/// Header and payload JSON signed with `key` (HS256), whatever they claim.
fn forge(header: &str, payload: &str, key: &[u8]) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    format!("{input}.{}", b64(&hmac_sha256(key, input.as_bytes())))
}

fn now() -> i64 {
    use edge_proxy::clock::Clock as _;
    edge_proxy::clock::SystemClock.now().get()
}

fn claims(sub: &str, iat: i64, exp: i64, extra: &str) -> String {
    format!(
        r#"{{"iss":"edge-proxy","aud":"edge-proxy","sub":"{sub}","email":"a@example.com","roles":["user"],"iat":{iat},"nbf":{iat},"exp":{exp},"jti":"forged-jti"{extra}}}"#
    )
}

#[tokio::test]
async fn crafted_tokens_are_refused_and_never_reach_the_upstream() {
    let up = TestUpstream::start().await;
    let p = TestProxy::start(up.addr).await;
    // The real key: forged tokens below are correctly signed, so only the checks can refuse them.
    let key = base64::engine::general_purpose::STANDARD
        .decode(JWT_KEY)
        .unwrap();
    let jku = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jku_addr = jku.local_addr().unwrap();
    let t = now();
    let good = claims("u1", t, t + 900, "");
    let h = r#"{"alg":"HS256","typ":"at+jwt"}"#;
    let cases: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"at+jwt"}"#),
                b64(good.as_bytes())
            ),
        ),
        (
            "alg NONE signed",
            forge(r#"{"alg":"NONE","typ":"at+jwt"}"#, &good, &key),
        ),
        (
            "RS256 header, HMAC signature (key confusion)",
            forge(r#"{"alg":"RS256","typ":"at+jwt"}"#, &good, &key),
        ),
        (
            "stripped signature",
            forge(h, &good, &key).rsplit_once('.').unwrap().0.to_owned() + ".",
        ),
        ("tampered payload", {
            let t2 = forge(h, &good, &key);
            let parts: Vec<&str> = t2.split('.').collect();
            format!(
                "{}.{}.{}",
                parts[0],
                b64(claims("admin", t, t + 900, "").as_bytes()),
                parts[2]
            )
        }),
        (
            "kid path",
            forge(
                r#"{"alg":"HS256","typ":"at+jwt","kid":"../../../../dev/null"}"#,
                &good,
                &key,
            ),
        ),
        (
            "kid sql",
            forge(
                r#"{"alg":"HS256","typ":"at+jwt","kid":"x' OR '1'='1"}"#,
                &good,
                &key,
            ),
        ),
        (
            "jku",
            forge(
                &format!(r#"{{"alg":"HS256","typ":"at+jwt","jku":"http://{jku_addr}/jwks.json"}}"#),
                &good,
                &key,
            ),
        ),
        (
            "x5u",
            forge(
                &format!(r#"{{"alg":"HS256","typ":"at+jwt","x5u":"http://{jku_addr}/cert.pem"}}"#),
                &good,
                &key,
            ),
        ),
        (
            "embedded jwk",
            forge(
                r#"{"alg":"HS256","typ":"at+jwt","jwk":{"kty":"oct","k":"AAAA"}}"#,
                &good,
                &key,
            ),
        ),
        (
            "crit",
            forge(
                r#"{"alg":"HS256","typ":"at+jwt","crit":["exp"]}"#,
                &good,
                &key,
            ),
        ),
        (
            "wrong typ",
            forge(r#"{"alg":"HS256","typ":"JWT"}"#, &good, &key),
        ),
        (
            "missing exp",
            forge(
                h,
                &good.replace(&format!(r#","exp":{}"#, t + 900), ""),
                &key,
            ),
        ),
        (
            "string exp",
            forge(
                h,
                &good.replace(
                    &format!(r#""exp":{}"#, t + 900),
                    &format!(r#""exp":"{}""#, t + 900),
                ),
                &key,
            ),
        ),
        (
            "expired beyond leeway",
            forge(h, &claims("u1", t - 1000, t - 31, ""), &key),
        ),
        (
            "future nbf",
            forge(
                h,
                &good.replace(&format!(r#""nbf":{t}"#), &format!(r#""nbf":{}"#, t + 600)),
                &key,
            ),
        ),
        (
            "wrong aud",
            forge(
                h,
                &good.replace(r#""aud":"edge-proxy""#, r#""aud":"other""#),
                &key,
            ),
        ),
        (
            "missing aud",
            forge(h, &good.replace(r#""aud":"edge-proxy","#, ""), &key),
        ),
        (
            "wrong iss",
            forge(
                h,
                &good.replace(r#""iss":"edge-proxy""#, r#""iss":"evil""#),
                &key,
            ),
        ),
        (
            "duplicate sub",
            forge(h, &claims("u1", t, t + 900, r#","sub":"admin""#), &key),
        ),
        (
            "lifetime too long",
            forge(h, &claims("u1", t, t + 86_400, ""), &key),
        ),
        ("oversized", "a".repeat(5000)),
        // Correctly formed and signed, but never minted: not in the session allowlist.
        ("valid but never issued", forge(h, &good, &key)),
    ];
    for (name, token) in &cases {
        let r = p.get("/todos", Some(token)).await;
        assert_eq!(r.status(), 401, "{name}");
        let www = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(www.contains(r#"error="invalid_token""#), "{name}: {www}");
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["error"],
            "invalid_token",
            "{name}"
        );
    }
    assert_eq!(
        up.forwarded().len(),
        0,
        "no crafted token reached the upstream"
    );
    let connected = tokio::time::timeout(Duration::from_millis(200), jku.accept()).await;
    assert!(
        connected.is_err(),
        "the proxy fetched a key from a jku/x5u URL"
    );
}

#[tokio::test]
async fn when_readyz_says_200_after_a_redis_restart_the_next_login_and_request_succeed() {
    // DESIGN.md 7.1: readiness tells the truth. Twenty restarts in a row, each followed at once by a
    // login and an authenticated GET as soon as /readyz answers 200.
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let up = TestUpstream::start().await;
    let url = redis.url();
    let p = TestProxy::start_with(up.addr, "", |c| Some(redis_stores(&url, "restart:", c))).await;
    let token = p.token("rita@example.com").await;
    assert_eq!(p.get("/todos", Some(&token)).await.status(), 200);
    for round in 0..20 {
        redis.restart().await;
        let mut ready = false;
        for _ in 0..100 {
            let r = p.client.get(p.admin_url("/readyz")).send().await.unwrap();
            if r.status() == 200 {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "round {round}: /readyz never said 200");
        let r = p.login("rita@example.com", crate::harness::PASSWORD).await;
        assert_eq!(
            r.status(),
            200,
            "round {round}: login right after /readyz said 200"
        );
        let v: serde_json::Value = r.json().await.unwrap();
        let token = v["access_token"].as_str().unwrap().to_owned();
        assert_eq!(
            p.get("/todos", Some(&token)).await.status(),
            200,
            "round {round}: the authenticated request right after the login"
        );
    }
}

#[tokio::test]
async fn a_redis_outage_fails_closed_and_recovers_without_a_restart() {
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let url = redis.url();
    let up = TestUpstream::start().await;
    let p = TestProxy::start_with(up.addr, "", |c| Some(redis_stores(&url, "outage:", c))).await;
    let token = p.token("olga@example.com").await;
    assert_eq!(p.get("/todos", Some(&token)).await.status(), 200);

    redis.stop();
    let before = up.forwarded().len();
    let r = p.get("/todos", Some(&token)).await;
    assert_eq!(r.status(), 503, "fail closed while the store is down");
    assert_eq!(r.headers()["retry-after"], "5");
    assert_eq!(
        p.login("olga@example.com", crate::harness::PASSWORD)
            .await
            .status(),
        503
    );
    assert_eq!(
        up.forwarded().len(),
        before,
        "nothing was forwarded on a guess"
    );
    assert_eq!(
        p.get("/public/x", None).await.status(),
        200,
        "public routes keep working"
    );
    let ready = p
        .client
        .get(p.admin_url("/readyz"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(ready, 503);

    // Redis comes back empty (it keeps nothing on disk): the old token is gone, logging in works again.
    redis.restart().await;
    let mut recovered = false;
    for _ in 0..100 {
        if p.login("olga@example.com", crate::harness::PASSWORD)
            .await
            .status()
            == 200
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "the proxy did not recover within 10 s of Redis returning"
    );
    assert_eq!(
        p.client
            .get(p.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let fresh = p.token("olga@example.com").await;
    assert_eq!(p.get("/todos", Some(&fresh)).await.status(), 200);
    assert_eq!(
        p.get("/todos", Some(&token)).await.status(),
        401,
        "sessions lost with Redis are not honoured"
    );
}
