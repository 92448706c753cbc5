//! `TestUpstream` (records what reached it and implements the credential check) and `TestProxy` (the
//! real proxy built from TOML, run on its own thread with a shutdown fired on drop).

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use edge_proxy::{Config, Stores};
use pingora::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};

pub const PASSWORD: &str = "correct horse battery";
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdefghijkl";
pub const JWT_KEY: &str = "q3V0m8Zb1xLr2c9NfT4yWj6sHk0pAe7uGd5iRo3lPnM=";
pub const IDENTITY_SECRET: &str = "Zk8wXr3nB6tq1yLh9sVd4cPa2mJe7uGo5iRf0lKbNwE=";

#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    /// Body bytes received, or `None` when the body never completed (the proxy aborted it).
    pub body: Option<usize>,
}

#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Vec<Seen>>>);

impl Recorder {
    pub fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

pub struct TestUpstream {
    pub addr: SocketAddr,
    pub seen: Recorder,
    /// Stops the server when the upstream is dropped (`start_on` hands it to the test instead).
    stop: Option<UpstreamStop>,
}

/// The user id the test upstream reports for an email.
pub fn user_id_for(email: &str) -> String {
    let mut h: u128 = 0xcbf2_9ce4_8422_2325;
    for b in email.trim().to_lowercase().bytes() {
        h = (h ^ u128::from(b)).wrapping_mul(0x0100_0000_0000_0000_0000_013b);
    }
    uuid::Uuid::from_u128(h).to_string()
}

async fn verify(State(seen): State<Recorder>, req: Request) -> axum::response::Response {
    record(&seen, &req);
    let body = axum::body::to_bytes(req.into_body(), 1 << 16)
        .await
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let email = v["email"]
        .as_str()
        .unwrap_or_default()
        .trim()
        .to_lowercase();
    if v["password"] == PASSWORD {
        Json(serde_json::json!({"user_id": user_id_for(&email), "email": email, "roles": ["user"]}))
            .into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": {"code": "invalid_credentials"}})),
        )
            .into_response()
    }
}

fn record(seen: &Recorder, req: &Request) {
    seen.0.lock().unwrap().push(Seen {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        headers: req.headers().clone(),
        body: Some(0),
    });
}

async fn echo(State(seen): State<Recorder>, req: Request) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20)
        .await
        .ok()
        .map(|b| b.len());
    let (n, writes) = {
        let mut all = seen.0.lock().unwrap();
        all.push(Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            headers: parts.headers.clone(),
            body,
        });
        let writes = all
            .iter()
            .filter(|s| {
                s.method != "GET" && s.method != "HEAD" && !s.path.starts_with("/internal/")
            })
            .count();
        (all.len(), writes)
    };
    let path = parts.uri.path().to_owned();
    let user = parts
        .headers
        .get("x-user-id")
        .map(|v| v.to_str().unwrap().to_owned());
    // What the edge cache tests need, chosen by path: a status, a cookie, cache directives, a
    // validator that changes with every write (and answers 304 to a current one), a slow answer.
    let mut headers = HeaderMap::new();
    let mut status = StatusCode::OK;
    let etag = format!("\"w{writes}\"");
    if path.contains("/status-404") {
        status = StatusCode::NOT_FOUND;
    }
    if path.contains("/status-500") {
        status = StatusCode::INTERNAL_SERVER_ERROR;
    }
    if path.contains("/cookie") {
        headers.insert("set-cookie", "session=1".parse().unwrap());
    }
    if path.contains("/no-store") {
        headers.insert("cache-control", "no-store".parse().unwrap());
    }
    if path.contains("/private") {
        headers.insert("cache-control", "private, no-cache".parse().unwrap());
    }
    if path.contains("/etag") {
        headers.insert("etag", etag.parse().unwrap());
        if parts
            .headers
            .get("if-none-match")
            .and_then(|v| v.to_str().ok())
            == Some(etag.as_str())
        {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
    }
    if path.contains("/slow") {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // A careless upstream: a version string and wide-open CORS, which the proxy must not pass on.
    headers.insert("server", "upstream/1.2.3".parse().unwrap());
    headers.insert("access-control-allow-origin", "*".parse().unwrap());
    headers.insert("access-control-allow-credentials", "true".parse().unwrap());
    (
        status,
        headers,
        Json(serde_json::json!({"path": path, "user": user, "n": n, "writes": writes})),
    )
        .into_response()
}

/// Stops a `TestUpstream::start_on` upstream when sent or dropped: the listener closes (connects are
/// refused) and open connections close once idle.
pub type UpstreamStop = tokio::sync::oneshot::Sender<()>;

impl TestUpstream {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, Recorder::default())
    }

    /// An upstream on `addr` (say, a port from `free_port`, perhaps used before) that records into
    /// `seen`, and the handle that stops it.
    pub async fn start_on(addr: SocketAddr, seen: Recorder) -> (Self, UpstreamStop) {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let mut up = Self::serve(listener, seen);
        let stop = up.stop.take().unwrap();
        (up, stop)
    }

    fn serve(listener: tokio::net::TcpListener, seen: Recorder) -> Self {
        let app = axum::Router::new()
            .route("/internal/credentials/verify", axum::routing::post(verify))
            .fallback(echo)
            .with_state(seen.clone());
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Self {
            addr,
            seen,
            stop: Some(stop),
        }
    }

    /// Credential checks that reached the upstream.
    pub fn verifications(&self) -> usize {
        self.seen
            .all()
            .iter()
            .filter(|s| s.path == "/internal/credentials/verify")
            .count()
    }

    /// Requests that reached the upstream other than credential checks.
    pub fn forwarded(&self) -> Vec<Seen> {
        self.seen
            .all()
            .into_iter()
            .filter(|s| !s.path.starts_with("/internal/"))
            .collect()
    }
}

/// A port that was free a moment ago (pingora binds the public listener itself).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The proxy config used by the tests, pointing at `upstream`.
pub fn config_toml(listen: u16, upstream: SocketAddr) -> String {
    format!(
        r#"
listen = "127.0.0.1:{listen}"
[server]
threads = 1
grace_period_seconds = 0
graceful_shutdown_timeout_seconds = 1
[admin]
listen = "127.0.0.1:0"
token = "{ADMIN_TOKEN}"
[jwt]
key = "{JWT_KEY}"
realm = "test"
[identity]
secret = "{IDENTITY_SECRET}"
[upstreams.todo]
peers = ["{upstream}"]
health_check_interval_ms = 200
connect_timeout_ms = 500
[[routes]]
name = "public"
prefix = "/public"
upstream = "todo"
auth = "none"
[[routes]]
name = "todos"
prefix = "/todos"
upstream = "todo"
max_body_bytes = 1024
"#
    )
}

struct Signal(tokio::sync::watch::Receiver<bool>);

#[async_trait]
impl ShutdownSignalWatch for Signal {
    async fn recv(&self) -> ShutdownSignal {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|stop| *stop).await;
        ShutdownSignal::FastShutdown
    }
}

pub struct TestProxy {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub client: reqwest::Client,
    /// The proxy's clock: tests move time with `clock.advance` instead of sleeping.
    pub clock: Arc<edge_proxy::clock::OffsetClock>,
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestProxy {
    /// A proxy with in-memory stores.
    pub async fn start(upstream: SocketAddr) -> Self {
        Self::start_with(upstream, "", |_| None).await
    }

    /// A proxy with `extra` TOML appended to the test config; `stores` may supply shared stores
    /// (default: in-memory ones built from the config).
    pub async fn start_with(
        upstream: SocketAddr,
        extra: &str,
        stores: impl FnOnce(&Config) -> Option<Stores>,
    ) -> Self {
        Self::start_edited(upstream, |text| format!("{text}\n{extra}"), stores).await
    }

    /// Like `start_with`, with the whole test config text passed through `edit`.
    pub async fn start_edited(
        upstream: SocketAddr,
        edit: impl FnOnce(String) -> String,
        stores: impl FnOnce(&Config) -> Option<Stores>,
    ) -> Self {
        let port = free_port();
        let text = edit(config_toml(port, upstream));
        let cfg = Config::from_toml(&text, &Default::default(), std::path::Path::new("."))
            .expect("test config is valid");
        let stores = match stores(&cfg) {
            Some(s) => s,
            None => Stores::from_config(&cfg).unwrap(),
        };
        let clock = edge_proxy::clock::OffsetClock::new();
        let proxy = edge_proxy::build_with(cfg, stores, clock.clone()).expect("proxy builds");
        let (addr, admin) = (proxy.listen_addr(), proxy.admin_addr());
        let (stop, rx) = tokio::sync::watch::channel(false);
        let thread = std::thread::spawn(move || {
            proxy.run(RunArgs {
                shutdown_signal: Box::new(Signal(rx)),
            })
        });
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Self {
            addr,
            admin,
            client: reqwest::Client::new(),
            clock,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/auth/login"))
            .json(&serde_json::json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
    }

    pub async fn token(&self, email: &str) -> String {
        let r = self.login(email, PASSWORD).await;
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["token_type"], "Bearer");
        v["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut r = self.client.get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.unwrap()
    }

    /// A URL on the proxy's admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// The metrics text once it contains `needle`. Request counters are recorded in pingora's
    /// `logging` phase, which may run just after the client got its response, so poll (bounded).
    pub async fn metrics_with(&self, needle: &str) -> String {
        let mut text = String::new();
        for _ in 0..100 {
            text = self
                .client
                .get(self.admin_url("/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if text.contains(needle) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        text
    }

    pub async fn post(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `REDIS_URL`, or `None` (skipped) when unset outside CI.
pub fn redis_url() -> Option<String> {
    match std::env::var("REDIS_URL") {
        Ok(u) => Some(u),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but REDIS_URL is not: Redis tests cannot be skipped in CI"
            );
            eprintln!("skipped: REDIS_URL is not set (Redis tests)");
            None
        }
    }
}

/// A unique key prefix, and a guard that deletes its keys at the end of the test.
pub struct RedisPrefix {
    pub url: String,
    pub prefix: String,
}

impl RedisPrefix {
    pub fn new(url: String) -> Self {
        Self {
            url,
            prefix: format!("edge-proxy-test:{}:", uuid::Uuid::new_v4().simple()),
        }
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        if let Ok(client) = redis::Client::open(self.url.as_str()) {
            if let Ok(mut c) = client.get_connection() {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{}*", self.prefix))
                    .query(&mut c)
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut c);
                }
            }
        }
    }
}

/// Stores sharing one Redis under `prefix`, as two proxy replicas would.
pub fn redis_stores(url: &str, prefix: &str, cfg: &Config) -> Stores {
    use secrecy::SecretString;
    let url = SecretString::from(url.to_owned());
    let redis = edge_proxy::store::RedisConnector::new(&url, Duration::from_secs(1)).unwrap();
    // One connection for both stores, as `Stores::from_config` makes it.
    Stores::on_redis(Arc::new(redis), prefix, &cfg.login)
}

/// A Redis server of the test's own, on a free loopback port, that the test may kill and restart.
pub struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    /// `None` (after saying why) when redis-server is not installed; CI requires it.
    pub async fn start() -> Option<Self> {
        if std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but redis-server is missing"
            );
            eprintln!("skipped: redis-server is not installed");
            return None;
        }
        let mut r = Self {
            port: free_port(),
            child: None,
        };
        r.restart().await;
        Some(r)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// (Re)starts the server on the same port and waits until it accepts connections.
    pub async fn restart(&mut self) {
        self.stop();
        self.child = Some(
            std::process::Command::new("redis-server")
                .args([
                    "--port",
                    &self.port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        for _ in 0..250 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
