//! `spawn_app` and typed helpers: each test gets its own database (a SQLite file in a temp dir, or a
//! PostgreSQL database with a random name that is dropped afterwards) and its own app on port 0.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;
use todo_backend::config::{Config, RawConfig};
use todo_backend::identity::{AssertionClaims, ASSERTION_TYP};
use todo_backend::store::{system_clock, Clock, PgStore, SqliteStore, Store};
use todo_backend::Application;

pub const SECRET: &[u8] = &[
    0x9c, 0x1e, 0x4f, 0x77, 0x20, 0xa1, 0x3b, 0x58, 0xd4, 0x66, 0x0f, 0xe2, 0x91, 0x3c, 0x7a, 0xb5,
    0x48, 0x02, 0xcf, 0x6d, 0x13, 0x8e, 0xf0, 0x55, 0xba, 0x27, 0x69, 0xc3, 0x84, 0x1d, 0xe7, 0x3a,
];

/// Keeps whatever backs a test database alive until the test ends, then removes it.
pub enum DbGuard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for DbGuard {
    fn drop(&mut self) {
        if let Self::Postgres { admin_url, name } = self {
            let (url, name) = (admin_url.clone(), name.clone());
            // Drop runs outside any runtime guarantee; use a private one.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    use sqlx::Connection as _;
                    if let Ok(mut c) = sqlx::PgConnection::connect(&url).await {
                        let _ = sqlx::query(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .execute(&mut c)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

pub async fn sqlite_store() -> (Arc<dyn Store>, DbGuard) {
    sqlite_store_with(system_clock()).await
}

/// A SQLite store in a temp dir whose timestamps come from `clock`.
pub async fn sqlite_store_with(clock: Clock) -> (Arc<dyn Store>, DbGuard) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&dir.path().join("todo.db"), &Default::default(), true)
        .await
        .expect("sqlite store")
        .with_clock(clock);
    (Arc::new(store), DbGuard::Sqlite(dir))
}

/// A PostgreSQL store on a fresh database whose timestamps come from `clock`, or `None` (skipped).
pub async fn pg_store_with(clock: Clock) -> Option<(Arc<dyn Store>, DbGuard)> {
    let (pool, guard) = pg_database().await?;
    let store = PgStore::from_pool(pool).with_clock(clock);
    store.migrate().await.expect("migrations");
    Some((Arc::new(store), guard))
}

/// A fresh PostgreSQL database, or `None` (skipped) without `DATABASE_URL`; with `CI` set a missing
/// `DATABASE_URL` is a failure.
pub async fn pg_store() -> Option<(Arc<dyn Store>, DbGuard)> {
    pg_store_with(system_clock()).await
}

/// A fresh, empty PostgreSQL database (not migrated) and a pool on it. It collates like most
/// production clusters (ICU `en-US`, linguistic order) rather than this machine's `C.UTF-8`, so a
/// query whose order depends on the database default shows it here.
pub async fn pg_database() -> Option<(sqlx::PgPool, DbGuard)> {
    let Ok(admin_url) = std::env::var("DATABASE_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but DATABASE_URL is not: PostgreSQL tests cannot be skipped in CI"
        );
        eprintln!("skipped: DATABASE_URL is not set (PostgreSQL tests)");
        return None;
    };
    use sqlx::Connection as _;
    let name = format!("todo_test_{}", uuid::Uuid::new_v4().simple());
    let mut c = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect to DATABASE_URL");
    let linguistic = format!(
        "CREATE DATABASE \"{name}\" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
    );
    if let Err(e) = sqlx::query(&linguistic).execute(&mut c).await {
        // A server without ICU: the cluster's default collation.
        eprintln!("note: no ICU collation for the test database ({e})");
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut c)
            .await
            .unwrap();
    }
    let guard = DbGuard::Postgres {
        admin_url: admin_url.clone(),
        name: name.clone(),
    };
    let url = replace_db(&admin_url, &name);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(5)
        .connect(&url)
        .await
        .unwrap();
    Some((pool, guard))
}

fn replace_db(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub client: reqwest::Client,
    _db: DbGuard,
}

pub fn test_config() -> Config {
    let secret = base64::engine::general_purpose::STANDARD.encode(SECRET);
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [database]\nurl = \"sqlite:unused.db\"\n[identity]\nsecret = \"{secret}\"\n\
         [password]\nmemory_kib = 1024\niterations = 1\n"
    );
    let raw: RawConfig = settings::parse_str(&text, &HashMap::new(), "TODO_BACKEND").unwrap();
    Config::from_raw(raw, Path::new(".")).unwrap()
}

pub async fn spawn_with(store: Arc<dyn Store>, db: DbGuard) -> TestApp {
    let app = Application::with_store(test_config(), store)
        .await
        .expect("app builds");
    let (addr, admin_addr) = (app.local_addr(), app.admin_addr());
    tokio::spawn(app.run(std::future::pending()));
    TestApp {
        addr,
        admin_addr,
        client: reqwest::Client::new(),
        _db: db,
    }
}

pub async fn spawn_app() -> TestApp {
    let (store, db) = sqlite_store().await;
    spawn_with(store, db).await
}

/// A user as the proxy would assert it.
#[derive(Clone)]
pub struct User {
    pub id: String,
    pub email: String,
}

/// The proxy's service assertion for its own call of `method path` (the credential check).
pub fn service_assertion(method: &str, path: &str) -> String {
    let proxy = User {
        id: todo_backend::identity::SERVICE_SUBJECT.into(),
        email: String::new(),
    };
    assertion(&proxy, method, path)
}

/// Asks the credential check as the proxy does (with its service assertion).
pub async fn check_credentials(app: &TestApp, body: &Value) -> reqwest::Response {
    let path = "/internal/credentials/verify";
    app.client
        .post(app.url(path))
        .header("x-user-id", todo_backend::identity::SERVICE_SUBJECT)
        .header("x-identity-assertion", service_assertion("POST", path))
        .json(body)
        .send()
        .await
        .unwrap()
}

pub fn assertion(user: &User, method: &str, path: &str) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = AssertionClaims {
        iss: "edge-proxy".into(),
        aud: "todo".into(),
        sub: user.id.clone(),
        email: user.email.clone(),
        roles: vec!["user".into()],
        jti: "test-jti".into(),
        htm: method.into(),
        htu: path.into(),
        iat: now,
        exp: now + 60,
    };
    let mut h = Header::new(Algorithm::HS256);
    h.typ = Some(ASSERTION_TYP.into());
    jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(SECRET)).unwrap()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn register(&self, email: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/auth/register"))
            .json(&serde_json::json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
    }

    pub async fn new_user(&self, email: &str) -> User {
        let r = self.register(email, "correct horse battery").await;
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        User {
            id: v["id"].as_str().unwrap().to_owned(),
            email: v["email"].as_str().unwrap().to_owned(),
        }
    }

    /// Sends `method path` as `user` (with a valid assertion for exactly this request).
    pub async fn call(
        &self,
        user: &User,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, _, body) = self.call_in(None, user, method, path, body).await;
        (status, body)
    }

    /// Like `call`, in API version `version` (the `Api-Version` the proxy would send), with the
    /// answer's headers.
    pub async fn call_in(
        &self,
        version: Option<&str>,
        user: &User,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let path_only = path.split('?').next().unwrap();
        let mut req = self
            .client
            .request(method.parse().unwrap(), self.url(path))
            .header("x-user-id", &user.id)
            .header("x-identity-assertion", assertion(user, method, path_only));
        if let Some(v) = version {
            req = req.header("api-version", v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (
            status,
            headers,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            },
        )
    }
}

#[track_caller]
pub fn assert_error(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
}
