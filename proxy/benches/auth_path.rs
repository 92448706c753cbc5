//! Per-request cost of the authenticated path, split into its parts (issue: tokens, benchmark):
//! verifying the access token (own HS256 and EdDSA; external EdDSA and RS256 through the issuer
//! dispatch), the session-store lookup (in-process, and Redis when `REDIS_URL` is set: one `MGET`
//! round trip), and signing the identity assertion (HS256 and EdDSA).
//!
//! Run with `bash bench/auth-cost.sh` (it also counts Redis round trips per proxied request), or
//! `cargo bench -p edge-proxy --bench auth_path`. `BENCH_RSA_KEY` names a PKCS#1 DER RSA key for the
//! RS256 case (the script makes one with openssl); without it that case is left out.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion};
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use edge_proxy::clock::{Clock as _, SystemClock, UnixSecs};
use edge_proxy::session::{MemorySessionStore, RedisSessionStore, SessionStore, TokenRef};
use edge_proxy::tokens::assertion::{Asserter, IdentityConfig, Subject};
use edge_proxy::tokens::issuer::{Issuer, IssuerConfig, JwksSource};
use edge_proxy::tokens::keys::{OwnKey, SigningAlg};
use edge_proxy::tokens::own::{JwtConfig, TokenService};
use edge_proxy::tokens::Verifier;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{SecretBox, SecretString};

const HS_KEY: &[u8] = b"a-benchmark-hs256-key-of-32-bytes-or-more";

fn jwt_config(algorithm: SigningAlg, key: OwnKey) -> JwtConfig {
    JwtConfig {
        algorithm,
        key,
        previous: None,
        issuer: "edge-proxy".into(),
        audience: "edge-proxy".into(),
        lifetime_secs: 900,
        leeway_secs: 30,
        realm: "edge-proxy".into(),
    }
}

fn hs_key() -> OwnKey {
    OwnKey {
        kid: Some("k1".into()),
        material: SecretBox::new(Box::new(HS_KEY.to_vec())),
        public: None,
    }
}

fn ed_key(seed: u8) -> OwnKey {
    OwnKey::ed25519(
        &ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
        Some("k1".into()),
    )
}

fn now() -> UnixSecs {
    SystemClock.now()
}

/// An issuer with a JWKS file holding `jwk`, behind the dispatching verifier.
fn external_verifier(jwk: serde_json::Value, alg: Algorithm) -> (Verifier, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, serde_json::json!({ "keys": [jwk] }).to_string()).unwrap();
    let config = IssuerConfig {
        name: "idp".into(),
        iss: "https://idp.example".into(),
        source: JwksSource::file(path, &[alg]).unwrap(),
        audiences: vec!["edge-proxy".into()],
        algorithms: vec![alg],
        rfc9068: true,
        max_lifetime: 3600,
    };
    let fetches = prometheus::IntCounterVec::new(
        prometheus::Opts::new("fetches", "fetches"),
        &["issuer", "result"],
    )
    .unwrap();
    let issuer = Arc::new(Issuer::new(config, fetches, Arc::new(SystemClock)).unwrap());
    let own = TokenService::from_config(&jwt_config(SigningAlg::Hs256, hs_key()));
    (
        Verifier::new(Arc::new(own), vec![issuer], Duration::from_secs(30)),
        dir,
    )
}

fn external_token(alg: Algorithm, key: &EncodingKey) -> String {
    let mut h = Header::new(alg);
    h.typ = Some("at+jwt".into());
    h.kid = Some("e1".into());
    let t = now().get();
    let claims = serde_json::json!({
        "iss": "https://idp.example", "aud": "edge-proxy", "sub": "alice", "jti": "j-1",
        "iat": t, "exp": t + 3000, "email": "alice@idp.example", "roles": ["reader"],
    });
    jsonwebtoken::encode(&h, &claims, key).unwrap()
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

fn token_verification(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut g = c.benchmark_group("verify");
    for (name, alg, key) in [
        ("own_hs256", SigningAlg::Hs256, hs_key()),
        ("own_eddsa", SigningAlg::EdDsa, ed_key(1)),
    ] {
        let s = TokenService::from_config(&jwt_config(alg, key));
        let token = s
            .mint("u1", "a@example.com", &["user".into()], now())
            .unwrap()
            .token;
        assert!(s.verify(&token, now()).is_ok());
        g.bench_function(name, |b| b.iter(|| s.verify(&token, now()).unwrap()));
    }

    let ed = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
    let (verifier, _dir) = external_verifier(
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "e1",
                           "x": b64(&ed.verifying_key().to_bytes())}),
        Algorithm::EdDSA,
    );
    let token = external_token(
        Algorithm::EdDSA,
        &EncodingKey::from_ed_der(ed.to_pkcs8_der().unwrap().as_bytes()),
    );
    assert!(rt.block_on(verifier.verify(&token, now())).is_ok());
    g.bench_function("external_eddsa", |b| {
        b.to_async(&rt)
            .iter(|| async { verifier.verify(&token, now()).await.unwrap() })
    });

    if let Ok(path) = std::env::var("BENCH_RSA_KEY") {
        use rsa::pkcs1::DecodeRsaPrivateKey as _;
        use rsa::traits::PublicKeyParts as _;
        let der = std::fs::read(path).unwrap();
        let private = rsa::RsaPrivateKey::from_pkcs1_der(&der).unwrap();
        let (verifier, _dir) = external_verifier(
            serde_json::json!({"kty": "RSA", "kid": "e1",
                               "n": b64(&private.n().to_bytes_be()),
                               "e": b64(&private.e().to_bytes_be())}),
            Algorithm::RS256,
        );
        let token = external_token(Algorithm::RS256, &EncodingKey::from_rsa_der(&der));
        assert!(rt.block_on(verifier.verify(&token, now())).is_ok());
        g.bench_function("external_rs256_2048", |b| {
            b.to_async(&rt)
                .iter(|| async { verifier.verify(&token, now()).await.unwrap() })
        });
    }
    g.finish();
}

fn store_lookup(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut g = c.benchmark_group("session_status");
    let t = now();
    let j42 = TokenRef {
        jti: "j42",
        sub: "u42",
        iat: t,
    };
    let memory = MemorySessionStore::new();
    rt.block_on(async {
        for i in 0..10_000 {
            let (jti, sub) = (format!("j{i}"), format!("u{i}"));
            let token = TokenRef {
                jti: &jti,
                sub: &sub,
                iat: t,
            };
            memory.insert(&token, t + 900, t).await.unwrap();
        }
    });
    g.bench_function("memory_10k_sessions", |b| {
        b.to_async(&rt)
            .iter(|| async { memory.status(&j42, now()).await.unwrap() })
    });
    if let Ok(url) = std::env::var("REDIS_URL") {
        let prefix = format!("bench-{}:", uuid::Uuid::new_v4().simple());
        let redis = RedisSessionStore::new(
            &SecretString::from(url.clone()),
            &prefix,
            Duration::from_secs(2),
        )
        .unwrap();
        rt.block_on(redis.insert(&j42, t + 900, t)).unwrap();
        g.bench_function("redis_loopback", |b| {
            b.to_async(&rt)
                .iter(|| async { redis.status(&j42, now()).await.unwrap() })
        });
        rt.block_on(async {
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query_async(&mut c)
                .await
                .unwrap();
            if !keys.is_empty() {
                let _: () = redis::cmd("DEL")
                    .arg(keys)
                    .query_async(&mut c)
                    .await
                    .unwrap();
            }
        });
    }
    g.finish();
}

fn assertion_signing(c: &mut Criterion) {
    let mut g = c.benchmark_group("assertion");
    for (name, algorithm, key) in [
        ("hs256", SigningAlg::Hs256, hs_key()),
        ("eddsa", SigningAlg::EdDsa, ed_key(3)),
    ] {
        let a = Asserter::from_config(&IdentityConfig {
            algorithm,
            key,
            issuer: "edge-proxy".into(),
            lifetime_secs: 60,
        });
        let roles = vec!["user".to_owned()];
        g.bench_function(name, |b| {
            b.iter(|| {
                a.mint(
                    &Subject {
                        audience: "todo",
                        sub: "5f0c6a47-2f7e-4a57-9a51-1f3b8c1d2e4f",
                        email: "a@example.com",
                        roles: &roles,
                        jti: "jti-1",
                        method: "GET",
                        path: "/todos",
                    },
                    now(),
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, token_verification, store_lookup, assertion_signing);
criterion_main!(benches);
