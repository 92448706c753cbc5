//! Own tokens signed with EdDSA (key rotation with a grace key, the JWKS endpoint) and tokens of an
//! external issuer whose JWKS is served by a local HTTPS server (a private CA the proxy is told to
//! trust): acceptance, rotation and the unknown-`kid` refetch limit, fetch failures failing closed,
//! revocation through the denylist, and own and external tokens never standing in for each other.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::{TestProxy, TestUpstream, ADMIN_TOKEN, JWT_KEY};

fn now() -> i64 {
    use edge_proxy::clock::Clock as _;
    edge_proxy::clock::SystemClock.now().get()
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// Signs `claims` with an Ed25519 key, as an identity provider would.
fn sign(key: &SigningKey, kid: Option<&str>, typ: &str, claims: &serde_json::Value) -> String {
    let mut h = Header::new(Algorithm::EdDSA);
    h.typ = Some(typ.into());
    h.kid = kid.map(str::to_owned);
    let der = key.to_pkcs8_der().unwrap();
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_ed_der(der.as_bytes())).unwrap()
}

fn jwk(key: &SigningKey, kid: &str) -> serde_json::Value {
    serde_json::json!({
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": kid,
        "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
    })
}

const ISS: &str = "https://idp.example.test";

fn ext_claims(sub: &str, jti: &str) -> serde_json::Value {
    let t = now();
    serde_json::json!({
        "iss": ISS, "aud": ["other-api", "edge-proxy"], "sub": sub, "jti": jti,
        "iat": t, "exp": t + 600, "email": format!("{sub}@idp.example.test"), "roles": ["reader"],
    })
}

/// What the JWKS server answers next.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// A tiny HTTPS server for a JWKS document, counting the fetches it serves.
struct JwksServer {
    port: u16,
    fetches: Arc<AtomicUsize>,
    reply: Arc<Mutex<Reply>>,
    ca_file: tempfile::NamedTempFile,
}

impl JwksServer {
    async fn start(keys: &[serde_json::Value]) -> Self {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let mut ca_file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut ca_file, cert.cert.pem().as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let fetches = Arc::new(AtomicUsize::new(0));
        let reply = Arc::new(Mutex::new(Reply {
            status: 200,
            headers: vec![("cache-control".into(), "max-age=3600".into())],
            body: serde_json::json!({ "keys": keys }).to_string(),
        }));
        let (f, r) = (Arc::clone(&fetches), Arc::clone(&reply));
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, f, r) = (acceptor.clone(), Arc::clone(&f), Arc::clone(&r));
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    f.fetch_add(1, Ordering::SeqCst);
                    let text = {
                        let reply = r.lock().unwrap();
                        let mut text = format!(
                            "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                            reply.status,
                            reply.body.len()
                        );
                        for (k, v) in &reply.headers {
                            text.push_str(&format!("{k}: {v}\r\n"));
                        }
                        text + "\r\n" + &reply.body
                    };
                    let _ = tls.write_all(text.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self {
            port,
            fetches,
            reply,
            ca_file,
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn serve_keys(&self, keys: &[serde_json::Value]) {
        let mut r = self.reply.lock().unwrap();
        r.status = 200;
        r.body = serde_json::json!({ "keys": keys }).to_string();
    }

    fn issuer_toml(&self, path: &str) -> String {
        format!(
            r#"
[[issuers]]
name = "idp"
iss = "{ISS}"
jwks = "https://127.0.0.1:{}{path}"
jwks_ca_file = "{}"
audiences = ["edge-proxy"]
algorithms = ["EdDSA", "ES256"]
"#,
            self.port,
            self.ca_file.path().display()
        )
    }
}

async fn status_of(p: &TestProxy, token: &str) -> u16 {
    p.get("/todos", Some(token)).await.status().as_u16()
}

#[tokio::test]
async fn external_tokens_are_verified_against_the_issuers_jwks_and_namespaced_upstream() {
    let up = TestUpstream::start().await;
    let idp = key(1);
    let jwks = JwksServer::start(&[jwk(&idp, "k1")]).await;
    let p = TestProxy::start_with(up.addr, &jwks.issuer_toml("/jwks.json"), |_| None).await;

    let token = sign(&idp, Some("k1"), "at+jwt", &ext_claims("alice", "x-1"));
    let r = p.get("/todos", Some(&token)).await;
    assert_eq!(r.status(), 200);
    let seen = up.forwarded().pop().unwrap();
    assert_eq!(
        seen.headers["x-user-id"], "idp:alice",
        "namespaced by issuer"
    );
    assert_eq!(seen.headers["x-user-issuer"], "idp");
    assert_eq!(seen.headers["x-user-email"], "alice@idp.example.test");
    assert_eq!(seen.headers["x-user-roles"], "reader");
    assert!(seen.headers.get("authorization").is_none());
    assert_eq!(jwks.fetches(), 1, "fetched once, then cached");

    // Another issuer's (or the proxy's own) kind of token can never stand in.
    let own_key = base64::engine::general_purpose::STANDARD
        .decode(JWT_KEY)
        .unwrap();
    let hs = {
        let mut h = Header::new(Algorithm::HS256);
        h.typ = Some("at+jwt".into());
        h.kid = Some("k1".into());
        jsonwebtoken::encode(
            &h,
            &ext_claims("alice", "x-2"),
            &EncodingKey::from_secret(&own_key),
        )
        .unwrap()
    };
    let public_as_hmac = {
        let mut h = Header::new(Algorithm::HS256);
        h.typ = Some("at+jwt".into());
        h.kid = Some("k1".into());
        jsonwebtoken::encode(
            &h,
            &ext_claims("alice", "x-3"),
            &EncodingKey::from_secret(&idp.verifying_key().to_bytes()),
        )
        .unwrap()
    };
    let mut own_iss = ext_claims("alice", "x-4");
    own_iss["iss"] = "edge-proxy".into();
    own_iss["aud"] = "edge-proxy".into();
    let mut wrong_aud = ext_claims("alice", "x-5");
    wrong_aud["aud"] = "other-api".into();
    let mut no_jti = ext_claims("alice", "x-6");
    no_jti.as_object_mut().unwrap().remove("jti");
    let mut string_exp = ext_claims("alice", "x-7");
    string_exp["exp"] = serde_json::Value::String((now() + 600).to_string());
    let mut too_long = ext_claims("alice", "x-8");
    too_long["exp"] = (now() + 7200).into();
    let jku = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let with_jku = {
        let mut h = Header::new(Algorithm::EdDSA);
        h.typ = Some("at+jwt".into());
        h.kid = Some("evil".into());
        h.jku = Some(format!("http://{}/jwks", jku.local_addr().unwrap()));
        let evil = key(9);
        let der = evil.to_pkcs8_der().unwrap();
        jsonwebtoken::encode(
            &h,
            &ext_claims("alice", "x-9"),
            &EncodingKey::from_ed_der(der.as_bytes()),
        )
        .unwrap()
    };
    let own_minted = p.token("bob@example.com").await;
    let own_claims_idp_key = {
        // The proxy's own claims, signed with the issuer's key: the own path uses own keys only.
        let payload = own_minted.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        sign(&idp, Some("k1"), "at+jwt", &claims)
    };
    let cases = [
        ("HS256 with the proxy's own key", hs),
        ("HS256 keyed with the issuer's public key", public_as_hmac),
        (
            "iss of the proxy, signed by the issuer",
            sign(&idp, Some("k1"), "at+jwt", &own_iss),
        ),
        ("own claims, issuer's key", own_claims_idp_key),
        (
            "wrong audience",
            sign(&idp, Some("k1"), "at+jwt", &wrong_aud),
        ),
        (
            "typ JWT under RFC 9068",
            sign(&idp, Some("k1"), "JWT", &ext_claims("alice", "x-10")),
        ),
        ("missing jti", sign(&idp, Some("k1"), "at+jwt", &no_jti)),
        ("string exp", sign(&idp, Some("k1"), "at+jwt", &string_exp)),
        (
            "lifetime over the issuer's maximum",
            sign(&idp, Some("k1"), "at+jwt", &too_long),
        ),
        ("jku to a local listener", with_jku),
        (
            "unknown issuer",
            sign(&idp, Some("k1"), "at+jwt", &{
                let mut c = ext_claims("alice", "x-11");
                c["iss"] = "https://evil.example".into();
                c
            }),
        ),
    ];
    let before = up.forwarded().len();
    for (name, token) in &cases {
        let r = p.get("/todos", Some(token)).await;
        assert_eq!(r.status(), 401, "{name}");
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token"),
            "{name}"
        );
    }
    assert_eq!(up.forwarded().len(), before, "nothing reached the upstream");
    let accepted = tokio::time::timeout(Duration::from_millis(200), jku.accept()).await;
    assert!(accepted.is_err(), "the jku listener got a connection");
    assert_eq!(
        status_of(&p, &own_minted).await,
        200,
        "own tokens still work"
    );
}

#[tokio::test]
async fn a_rotated_issuer_key_is_fetched_once_and_invented_kids_do_not_flood_the_issuer() {
    let up = TestUpstream::start().await;
    let (k1, k2) = (key(1), key(2));
    let jwks = JwksServer::start(&[jwk(&k1, "k1")]).await;
    let p = TestProxy::start_with(up.addr, &jwks.issuer_toml("/jwks.json"), |_| None).await;
    let t1 = sign(&k1, Some("k1"), "at+jwt", &ext_claims("alice", "r-1"));
    assert_eq!(status_of(&p, &t1).await, 200);
    assert_eq!(jwks.fetches(), 1);

    // The issuer rotates: k2 appears in its JWKS; the first k2 token triggers one refetch.
    jwks.serve_keys(&[jwk(&k1, "k1"), jwk(&k2, "k2")]);
    let t2 = sign(&k2, Some("k2"), "at+jwt", &ext_claims("alice", "r-2"));
    assert_eq!(status_of(&p, &t2).await, 200);
    assert_eq!(jwks.fetches(), 2, "one refetch for the unknown kid");

    // A flood of invented kids: no further fetch within the minute.
    let evil = key(3);
    for i in 0..25 {
        let kid = format!("invented-{i}");
        let t = sign(&evil, Some(&kid), "at+jwt", &ext_claims("alice", "r-3"));
        assert_eq!(status_of(&p, &t).await, 401);
    }
    assert_eq!(jwks.fetches(), 2, "refetches are limited to one a minute");
    assert_eq!(status_of(&p, &t1).await, 200);
    assert_eq!(status_of(&p, &t2).await, 200);
    let text = p
        .metrics_with(r#"edge_proxy_jwks_fetches_total{issuer="idp",result="ok"} 2"#)
        .await;
    assert!(
        text.contains(r#"edge_proxy_jwks_fetches_total{issuer="idp",result="ok"} 2"#),
        "{text}"
    );
}

#[tokio::test]
async fn jwks_fetch_failures_fail_closed_and_redirects_are_not_followed() {
    let up = TestUpstream::start().await;
    let idp = key(1);
    let target = JwksServer::start(&[jwk(&idp, "k1")]).await;
    let jwks = JwksServer::start(&[]).await;
    {
        let mut r = jwks.reply.lock().unwrap();
        r.status = 302;
        r.headers = vec![(
            "location".into(),
            format!("https://127.0.0.1:{}/jwks.json", target.port),
        )];
    }
    let p = TestProxy::start_with(up.addr, &jwks.issuer_toml("/jwks.json"), |_| None).await;
    let token = sign(&idp, Some("k1"), "at+jwt", &ext_claims("alice", "f-1"));
    let r = p.get("/todos", Some(&token)).await;
    assert_eq!(r.status(), 503, "no keys: fail closed, not 401");
    assert_eq!(r.headers()["retry-after"], "5");
    assert_eq!(target.fetches(), 0, "the redirect was not followed");

    // Over 64 KiB: refused as well.
    {
        let mut r = jwks.reply.lock().unwrap();
        r.status = 200;
        r.headers.clear();
        r.body = format!(
            r#"{{"keys":[{}],"pad":"{}"}}"#,
            jwk(&idp, "k1"),
            "x".repeat(70_000)
        );
    }
    // Past the initial retry interval (5 s) on the proxy's clock.
    p.clock.advance(Duration::from_millis(5100));
    assert_eq!(p.get("/todos", Some(&token)).await.status(), 503);
    assert_eq!(jwks.fetches(), 2);
    assert!(up.forwarded().is_empty(), "nothing forwarded on a guess");

    // The issuer recovers: the next attempt (after the retry interval) loads the keys.
    jwks.serve_keys(&[jwk(&idp, "k1")]);
    // Past the initial retry interval (5 s) on the proxy's clock.
    p.clock.advance(Duration::from_millis(5100));
    assert_eq!(p.get("/todos", Some(&token)).await.status(), 200);
    assert_eq!(
        p.get("/public/x", None).await.status(),
        200,
        "public routes never depended on it"
    );
}

#[tokio::test]
async fn external_tokens_are_revoked_by_logout_and_by_admin_revoke_all() {
    let up = TestUpstream::start().await;
    let idp = key(1);
    let jwks = JwksServer::start(&[jwk(&idp, "k1")]).await;
    let p = TestProxy::start_with(up.addr, &jwks.issuer_toml("/jwks.json"), |_| None).await;
    let a1 = sign(&idp, Some("k1"), "at+jwt", &ext_claims("alice", "v-1"));
    let a2 = sign(&idp, Some("k1"), "at+jwt", &ext_claims("alice", "v-2"));
    let b1 = sign(&idp, Some("k1"), "at+jwt", &ext_claims("bob", "v-3"));
    for t in [&a1, &a2, &b1] {
        assert_eq!(status_of(&p, t).await, 200);
    }
    assert_eq!(p.post("/auth/logout", &a1).await.status(), 204);
    assert_eq!(
        p.post("/auth/logout", &a1).await.status(),
        204,
        "idempotent"
    );
    assert_eq!(status_of(&p, &a1).await, 401, "logged out");
    assert_eq!(status_of(&p, &a2).await, 200, "other tokens stay valid");

    let admin = |path: &str| {
        p.client
            .post(p.admin_url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
    };
    assert_eq!(
        admin("/admin/issuers/idp/users/alice/revoke-all")
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        status_of(&p, &a2).await,
        401,
        "revoke-all reaches every token"
    );
    assert_eq!(status_of(&p, &b1).await, 200);
    assert_eq!(
        admin("/admin/issuers/idp/tokens/v-3/revoke")
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(status_of(&p, &b1).await, 401);
    assert_eq!(
        admin("/admin/issuers/nope/tokens/v-3/revoke")
            .await
            .unwrap()
            .status(),
        404
    );
    // Tokens the issuer mints after the revoke-all work again (the not-before rule, not a ban).
    p.clock.advance(Duration::from_millis(1100));
    let mut later = ext_claims("alice", "v-4");
    let t = edge_proxy::clock::Clock::now(&*p.clock).get();
    later["iat"] = t.into();
    later["exp"] = (t + 600).into();
    let a3 = sign(&idp, Some("k1"), "at+jwt", &later);
    assert_eq!(status_of(&p, &a3).await, 200);
}

/// The `[jwt]` section of the test config, switched to EdDSA with a grace key.
fn eddsa_jwt(current: &SigningKey, previous: &SigningKey, previous_until: &str) -> String {
    let pem = |k: &SigningKey| {
        let der = k.to_pkcs8_der().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_bytes());
        // Wrapped at 64 columns, as openssl writes it (RFC 7468 strict form).
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", // pragma: allowlist secret (PEM framing of a key made in the test)
            lines.join("\n")
        )
    };
    format!(
        "[jwt]\nalgorithm = \"EdDSA\"\nkey = \"\"\"\n{}\"\"\"\nkey_id = \"k2\"\nrealm = \"test\"\n[jwt.previous]\nkey = \"\"\"\n{}\"\"\"\nkey_id = \"k1\"\nverify_until = \"{previous_until}\"\n",
        pem(current),
        pem(previous)
    )
}

#[tokio::test]
async fn eddsa_own_tokens_rotate_with_a_grace_key_and_publish_a_jwks() {
    let up = TestUpstream::start().await;
    let (old, new) = (key(11), key(12));
    let sessions: Arc<Mutex<Option<Arc<dyn edge_proxy::session::SessionStore>>>> = Arc::default();
    let keep = Arc::clone(&sessions);
    let p = TestProxy::start_edited(
        up.addr,
        |text| {
            let jwt = format!("[jwt]\nkey = \"{JWT_KEY}\"\nrealm = \"test\"\n");
            assert!(text.contains(&jwt));
            text.replace(&jwt, &eddsa_jwt(&new, &old, "2999-01-01T00:00:00Z"))
        },
        move |cfg| {
            let stores = edge_proxy::Stores::from_config(cfg).unwrap();
            *keep.lock().unwrap() = Some(Arc::clone(&stores.sessions));
            Some(stores)
        },
    )
    .await;
    let sessions = sessions.lock().unwrap().clone().unwrap();

    let token = p.token("alice@example.com").await;
    let head: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(head["alg"], "EdDSA");
    assert_eq!(head["kid"], "k2");
    assert_eq!(status_of(&p, &token).await, 200);

    // A session minted before the rotation (signed with the previous key) still verifies.
    let t = now();
    let sub = crate::harness::user_id_for("carol@example.com");
    let claims = serde_json::json!({
        "iss": "edge-proxy", "aud": "edge-proxy", "sub": sub, "email": "carol@example.com",
        "roles": ["user"], "iat": t, "nbf": t, "exp": t + 900, "jti": "minted-before-rotation",
    });
    let at = edge_proxy::clock::UnixSecs(t);
    let token = edge_proxy::session::TokenRef {
        jti: "minted-before-rotation",
        sub: &sub,
        iat: at,
    };
    sessions.insert(&token, at + 900, at).await.unwrap();
    let before = sign(&old, Some("k1"), "at+jwt", &claims);
    assert_eq!(status_of(&p, &before).await, 200);
    let unknown = sign(&key(13), Some("k3"), "at+jwt", &claims);
    assert_eq!(status_of(&p, &unknown).await, 401);
    let wrong_key_right_kid = sign(&key(13), Some("k2"), "at+jwt", &claims);
    assert_eq!(status_of(&p, &wrong_key_right_kid).await, 401);

    // Other services verify with the published keys; only public halves are there.
    let r = p.get("/.well-known/jwks.json", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    let v: serde_json::Value = r.json().await.unwrap();
    let keys = v["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["kid"], "k2");
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["x"], jwk(&new, "k2")["x"]);
    assert_eq!(keys[1]["kid"], "k1");
    assert!(keys.iter().all(|k| k.get("d").is_none()));
    let post = p
        .client
        .post(p.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
}

#[tokio::test]
async fn a_retired_grace_key_no_longer_verifies_nor_is_published() {
    let up = TestUpstream::start().await;
    let (old, new) = (key(21), key(22));
    let p = TestProxy::start_edited(
        up.addr,
        |text| {
            let jwt = format!("[jwt]\nkey = \"{JWT_KEY}\"\nrealm = \"test\"\n");
            text.replace(&jwt, &eddsa_jwt(&new, &old, "2020-01-01T00:00:00Z"))
        },
        |_| None,
    )
    .await;
    let r = p.get("/.well-known/jwks.json", None).await;
    let v: serde_json::Value = r.json().await.unwrap();
    let kids: Vec<&str> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["k2"]);
    let t = now();
    let claims = serde_json::json!({
        "iss": "edge-proxy", "aud": "edge-proxy", "sub": "u", "email": "u@example.com",
        "roles": [], "iat": t, "nbf": t, "exp": t + 900, "jti": "j",
    });
    assert_eq!(
        status_of(&p, &sign(&old, Some("k1"), "at+jwt", &claims)).await,
        401
    );
}
