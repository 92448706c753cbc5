//! End to end with the real binaries: `todo-backend` and `edge-proxy` started as processes from the
//! test profile (ports, database and store overridden through the environment, as an operator would),
//! driven only through the proxy's public port. Once on embedded defaults (SQLite, in-process store)
//! and once on PostgreSQL + Redis with two proxies sharing the store.

// Test code: a panic (unwrap) is the failure report; helpers are `pub` for sibling modules.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The newest modification time of the files under `dirs` (the sources a binary is built from).
fn newest_source(dirs: &[PathBuf]) -> std::time::SystemTime {
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    let mut todo: Vec<PathBuf> = dirs.to_vec();
    while let Some(path) = todo.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            todo.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if let Ok(m) = meta.modified() {
            newest = newest.max(m);
        }
    }
    newest
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The workspace binaries, rebuilt when missing or older than their sources, so the test never runs
/// a stale binary (it used to, when run alone after a source change).
fn binaries() -> (PathBuf, PathBuf) {
    static BUILT: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = std::env::current_exe()
                .unwrap()
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .to_path_buf();
            let (proxy, backend) = (dir.join("edge-proxy"), dir.join("todo-backend"));
            let sources = newest_source(&[
                root().join("proxy/src"),
                root().join("proxy/Cargo.toml"),
                root().join("backend/src"),
                root().join("backend/Cargo.toml"),
                root().join("settings/src"),
                root().join("migrations"),
                root().join("Cargo.lock"),
            ]);
            let fresh = |bin: &Path| modified(bin).is_some_and(|m| m >= sources);
            if !fresh(&proxy) || !fresh(&backend) {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let mut cmd = Command::new(cargo);
                cmd.args(["build", "--bins", "-p", "edge-proxy", "-p", "todo-backend"]);
                if dir.file_name().is_some_and(|n| n == "release") {
                    cmd.arg("--release");
                }
                let status = cmd.current_dir(root()).status().unwrap();
                assert!(status.success(), "building the binaries failed");
            }
            assert!(
                fresh(&proxy) && fresh(&backend),
                "{} or {} is older than its sources after building",
                proxy.display(),
                backend.display()
            );
            (proxy, backend)
        })
        .clone()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when the test ends, pass or fail.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `bin --config <repo>/<config>` with `env`: how every test starts a binary.
fn command(bin: &Path, config: &str, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("--config")
        .arg(root().join(config))
        .envs(env.iter().cloned());
    cmd
}

fn spawn(bin: &Path, config: &str, env: &[(String, String)]) -> Proc {
    let log = std::env::var_os("TEST_LOG").is_some();
    let child = command(bin, config, env)
        .stdout(if log { Stdio::inherit() } else { Stdio::null() })
        .stderr(if log { Stdio::inherit() } else { Stdio::null() })
        .spawn()
        .unwrap();
    Proc(child)
}

async fn wait_ready(client: &reqwest::Client, url: &str) {
    for _ in 0..300 {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never became ready");
}

struct Backend {
    api: u16,
    admin: u16,
    _proc: Proc,
}

async fn start_backend(client: &reqwest::Client, database_url: &str) -> Backend {
    start_backend_with(client, database_url, "config/test/backend.toml").await
}

async fn start_backend_with(client: &reqwest::Client, database_url: &str, config: &str) -> Backend {
    let (_, bin) = binaries();
    let (api, admin) = (free_port(), free_port());
    let proc = spawn(
        &bin,
        config,
        &[
            (
                "TODO_BACKEND__SERVER__LISTEN".into(),
                format!("127.0.0.1:{api}"),
            ),
            (
                "TODO_BACKEND__ADMIN__LISTEN".into(),
                format!("127.0.0.1:{admin}"),
            ),
            ("TODO_BACKEND__DATABASE__URL".into(), database_url.into()),
        ],
    );
    wait_ready(client, &format!("http://127.0.0.1:{admin}/health/ready")).await;
    Backend {
        api,
        admin,
        _proc: proc,
    }
}

struct Proxy {
    base: String,
    admin: u16,
    proc: Proc,
}

async fn start_proxy(
    client: &reqwest::Client,
    backend_port: u16,
    store: &[(String, String)],
) -> Proxy {
    start_proxy_with(client, backend_port, store, "config/test/proxy.toml").await
}

async fn start_proxy_with(
    client: &reqwest::Client,
    backend_port: u16,
    store: &[(String, String)],
    config: &str,
) -> Proxy {
    let (bin, _) = binaries();
    let (public, admin) = (free_port(), free_port());
    let mut env = vec![
        ("EDGE_PROXY__LISTEN".into(), format!("127.0.0.1:{public}")),
        (
            "EDGE_PROXY__ADMIN__LISTEN".into(),
            format!("127.0.0.1:{admin}"),
        ),
        (
            "EDGE_PROXY__UPSTREAMS__TODO__PEERS".into(),
            format!("[\"127.0.0.1:{backend_port}\"]"),
        ),
    ];
    env.extend_from_slice(store);
    let proc = spawn(&bin, config, &env);
    wait_ready(client, &format!("http://127.0.0.1:{admin}/readyz")).await;
    Proxy {
        base: format!("http://127.0.0.1:{public}"),
        admin,
        proc,
    }
}

async fn call(
    c: &reqwest::Client,
    method: &str,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = c.request(method.parse().unwrap(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn login(c: &reqwest::Client, p: &Proxy, email: &str) -> String {
    let (s, v) = call(
        c,
        "POST",
        format!("{}/auth/login", p.base),
        None,
        Some(json!({"email": email, "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["expires_in"], 900);
    v["access_token"].as_str().unwrap().to_owned()
}

/// The user journey, through the proxy only. `other` is a second proxy sharing the store (or the same).
async fn journey(c: &reqwest::Client, p: &Proxy, other: &Proxy, backend_port: u16) {
    let email = format!("user-{}@example.com", uuid::Uuid::new_v4().simple());
    let (s, me) = call(
        c,
        "POST",
        format!("{}/auth/register", p.base),
        None,
        Some(json!({"email": email, "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(s, 201, "{me}");
    let token = login(c, p, &email).await;
    let second = login(c, other, &email.to_uppercase()).await;

    let (s, v) = call(c, "GET", format!("{}/me", p.base), Some(&token), None).await;
    assert_eq!((s, &v["id"]), (200, &me["id"]));

    let (s, cat) = call(
        c,
        "POST",
        format!("{}/categories", p.base),
        Some(&token),
        Some(json!({"name": "home"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, sub) = call(
        c,
        "POST",
        format!("{}/categories", p.base),
        Some(&token),
        Some(json!({"name": "garden", "parent_id": cat["id"]})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, tree) = call(
        c,
        "GET",
        format!("{}/categories", p.base),
        Some(&token),
        None,
    )
    .await;
    assert_eq!((s, &tree[0]["children"][0]["id"]), (200, &sub["id"]));
    let (s, todo) = call(
        c,
        "POST",
        format!("{}/todos", p.base),
        Some(&token),
        Some(json!({"title": "plant tulips", "category_id": sub["id"], "due_on": "2026-12-01"})),
    )
    .await;
    assert_eq!(s, 201, "{todo}");
    let todo_url = format!("{}/todos/{}", p.base, todo["id"].as_str().unwrap());
    let (s, list) = call(
        c,
        "GET",
        format!(
            "{}/todos?category_id={}&count=true",
            p.base,
            sub["id"].as_str().unwrap()
        ),
        Some(&token),
        None,
    )
    .await;
    assert_eq!((s, list["total"].as_i64()), (200, Some(1)));
    // The shipped profile's deprecated version, negotiated by the proxy and served by the backend's
    // version changes: the old field name, a total by default, and the deprecation headers.
    let old = c
        .get(&todo_url)
        .bearer_auth(&token)
        .header("accept", "application/json; version=2025-01-24")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 200);
    let h = old.headers();
    assert_eq!(h["api-version"], "2025-01-24");
    assert!(h["deprecation"].to_str().unwrap().starts_with('@'));
    assert!(h.contains_key("sunset") && h.contains_key("link"));
    let old: Value = old.json().await.unwrap();
    assert_eq!(
        (old.get("due_on"), &old["due_date"]),
        (None, &json!("2026-12-01"))
    );
    let r = c
        .get(format!("{}/todos", p.base))
        .bearer_auth(&token)
        .header("api-version", "2024-01-01")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        400,
        "an unknown version never reaches the backend"
    );
    let (s, patched) = call(
        c,
        "PATCH",
        todo_url.clone(),
        Some(&token),
        Some(json!({"completed": true})),
    )
    .await;
    assert_eq!((s, patched["completed"].as_bool()), (200, Some(true)));
    let (s, _) = call(
        c,
        "PATCH",
        format!("{}/categories/{}", p.base, sub["id"].as_str().unwrap()),
        Some(&token),
        Some(json!({"name": "yard"})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(
        c,
        "DELETE",
        format!("{}/categories/{}", p.base, cat["id"].as_str().unwrap()),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, 409, "a category with children is not deleted");
    let (s, _) = call(c, "DELETE", todo_url.clone(), Some(&token), None).await;
    assert_eq!(s, 204);
    let (s, _) = call(c, "GET", todo_url, Some(&token), None).await;
    assert_eq!(s, 404);

    // Logout: the old token is refused (on the other proxy too), the second token still works.
    let (s, _) = call(
        c,
        "POST",
        format!("{}/auth/logout", p.base),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, v) = call(
        c,
        "GET",
        format!("{}/todos", other.base),
        Some(&token),
        None,
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_token")));
    let (s, _) = call(c, "GET", format!("{}/todos", p.base), Some(&second), None).await;
    assert_eq!(s, 200);

    // Straight to the backend with forged identity headers: refused.
    let r = c
        .get(format!("http://127.0.0.1:{backend_port}/me"))
        .header("x-user-id", me["id"].as_str().unwrap())
        .header("x-user-email", email.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // And the credential check is not reachable through the proxy.
    let (s, _) = call(
        c,
        "POST",
        format!("{}/internal/credentials/verify", p.base),
        None,
        Some(json!({"email": email, "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(s, 404);
    // Nor on the backend's own listener without the proxy's service assertion.
    let (s, _) = call(
        c,
        "POST",
        format!("http://127.0.0.1:{backend_port}/internal/credentials/verify"),
        None,
        Some(json!({"email": email, "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(
        s, 404,
        "the credential check is no oracle for a direct peer"
    );
}

#[tokio::test]
async fn the_stack_works_end_to_end_on_embedded_defaults() {
    let c = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    let backend = start_backend(
        &c,
        &format!("sqlite:{}", dir.path().join("todo.db").display()),
    )
    .await;
    let proxy = start_proxy(&c, backend.api, &[]).await;
    journey(&c, &proxy, &proxy, backend.api).await;
}

/// Runs `openssl` as an operator would; the keys it writes are what the binaries must accept.
fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_stack_works_end_to_end_with_eddsa_tokens_and_assertions() {
    // Keys made with the commands docs/secrets.md gives operators.
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", &path("jwt.pem")]);
    openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        &path("identity.pem"),
    ]);
    openssl(&[
        "pkey",
        "-in",
        &path("identity.pem"),
        "-pubout",
        "-out",
        &path("identity.pub.pem"),
    ]);
    let fixtures = root().join("config/test/fixtures").display().to_string();
    let edit = |file: &str, from: &[(&str, String)]| {
        let mut text = std::fs::read_to_string(root().join("config/test").join(file))
            .unwrap()
            .replace("\"fixtures/", &format!("\"{fixtures}/"));
        for (old, new) in from {
            assert!(text.contains(old), "{file} has {old}");
            text = text.replace(old, new);
        }
        let out = dir.path().join(file);
        std::fs::write(&out, text).unwrap();
        out.display().to_string()
    };
    let backend_config = edit(
        "backend.toml",
        &[(
            "secret_file = \"",
            format!(
                "algorithm = \"EdDSA\"\npublic_key_file = \"{}\"\n# was: secret_file = \"",
                path("identity.pub.pem")
            ),
        )],
    );
    let proxy_config = edit(
        "proxy.toml",
        &[
            (
                "key_file = \"",
                format!(
                    "algorithm = \"EdDSA\"\nkey_id = \"2026-11\"\nkey_file = \"{}\"\n# was: key_file = \"",
                    path("jwt.pem")
                ),
            ),
            (
                "[identity]\nsecret_file = \"",
                format!(
                    "[identity]\nalgorithm = \"EdDSA\"\nsecret_file = \"{}\"\n# was: secret_file = \"",
                    path("identity.pem")
                ),
            ),
        ],
    );
    let c = reqwest::Client::new();
    let backend = start_backend_with(
        &c,
        &format!("sqlite:{}", dir.path().join("todo.db").display()),
        &backend_config,
    )
    .await;
    let proxy = start_proxy_with(&c, backend.api, &[], &proxy_config).await;
    journey(&c, &proxy, &proxy, backend.api).await;
    let (s, jwks) = call(
        &c,
        "GET",
        format!("{}/.well-known/jwks.json", proxy.base),
        None,
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(jwks["keys"][0]["kid"], "2026-11");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    assert!(jwks["keys"][0].get("d").is_none());
}

#[tokio::test]
async fn the_stack_works_end_to_end_on_postgres_and_redis_with_two_proxies() {
    let (Ok(db_url), Ok(redis_url)) = (std::env::var("DATABASE_URL"), std::env::var("REDIS_URL"))
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but DATABASE_URL/REDIS_URL are not"
        );
        eprintln!("skipped: DATABASE_URL and REDIS_URL are needed for this test");
        return;
    };
    use sqlx::Connection as _;
    let name = format!("todo_e2e_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&db_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .unwrap();
    let base = db_url
        .split('?')
        .next()
        .unwrap()
        .rsplit_once('/')
        .unwrap()
        .0;
    let prefix = format!("edge-proxy-e2e:{}:", uuid::Uuid::new_v4().simple());
    let store = [
        ("EDGE_PROXY__STORE__BACKEND".to_owned(), "redis".to_owned()),
        ("EDGE_PROXY__STORE__REDIS_URL".to_owned(), redis_url.clone()),
        ("EDGE_PROXY__STORE__KEY_PREFIX".to_owned(), prefix.clone()),
    ];
    {
        let c = reqwest::Client::new();
        let backend = start_backend(&c, &format!("{base}/{name}")).await;
        let a = start_proxy(&c, backend.api, &store).await;
        let b = start_proxy(&c, backend.api, &store).await;
        journey(&c, &a, &b, backend.api).await;
    }
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await;
    let mut r = redis::Client::open(redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut r)
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query(&mut r).unwrap();
    }
}

/// Runs a binary as an operator would; returns (success, stdout + stderr).
fn operator(bin: &Path, config: &str, env: &[(String, String)], args: &[&str]) -> (bool, String) {
    let out = command(bin, config, env).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The status of one login through the proxy.
async fn login_status(c: &reqwest::Client, p: &Proxy, email: &str, password: &str) -> u16 {
    let body = json!({"email": email, "password": password});
    call(
        c,
        "POST",
        format!("{}/auth/login", p.base),
        None,
        Some(body),
    )
    .await
    .0
}

#[tokio::test]
async fn operators_unlock_accounts_and_check_health_with_the_binaries() {
    let c = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    let backend = start_backend(
        &c,
        &format!("sqlite:{}", dir.path().join("todo.db").display()),
    )
    .await;
    let mut proxy = start_proxy(&c, backend.api, &[]).await;
    let (proxy_bin, backend_bin) = binaries();
    let proxy_env = [(
        "EDGE_PROXY__ADMIN__LISTEN".to_owned(),
        format!("127.0.0.1:{}", proxy.admin),
    )];
    let backend_env = [(
        "TODO_BACKEND__ADMIN__LISTEN".to_owned(),
        format!("127.0.0.1:{}", backend.admin),
    )];

    let email = "locked-out@example.com";
    let creds = |password: &str| json!({"email": email, "password": password});
    let (s, _) = call(
        &c,
        "POST",
        format!("{}/auth/register", proxy.base),
        None,
        Some(creds("correct horse battery")),
    )
    .await;
    assert_eq!(s, 201);
    for _ in 0..3 {
        let s = login_status(&c, &proxy, email, "wrong password").await;
        assert_eq!(s, 401);
    }
    let s = login_status(&c, &proxy, email, "correct horse battery").await;
    assert_eq!(s, 429, "blocked after the third failure");

    let (ok, out) = operator(
        &proxy_bin,
        "config/test/proxy.toml",
        &proxy_env,
        &["admin", "status", "Locked-Out@example.com"],
    );
    assert!(ok, "{out}");
    let status: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (status["failures"].as_u64(), status["blocked"].as_bool()),
        (Some(3), Some(true)),
        "{out}"
    );
    let (ok, out) = operator(
        &proxy_bin,
        "config/test/proxy.toml",
        &proxy_env,
        &["admin", "unlock", email],
    );
    assert!(ok && out.contains("unlocked"), "{out}");
    let s = login_status(&c, &proxy, email, "correct horse battery").await;
    assert_eq!(s, 200, "unlocked by the operator");

    let (ok, out) = operator(
        &proxy_bin,
        "config/test/proxy.toml",
        &proxy_env,
        &["healthcheck"],
    );
    assert!(ok && out.starts_with("healthy"), "{out}");
    let (ok, out) = operator(
        &backend_bin,
        "config/test/backend.toml",
        &backend_env,
        &["healthcheck"],
    );
    assert!(ok && out.starts_with("healthy"), "{out}");

    let _ = proxy.proc.0.kill();
    let _ = proxy.proc.0.wait();
    let (ok, out) = operator(
        &proxy_bin,
        "config/test/proxy.toml",
        &proxy_env,
        &["healthcheck", "--live"],
    );
    assert!(!ok && out.contains("unhealthy"), "{out}");
    drop(backend);
    let (ok, out) = operator(
        &backend_bin,
        "config/test/backend.toml",
        &backend_env,
        &["healthcheck"],
    );
    assert!(!ok && out.contains("unhealthy"), "{out}");
}

/// Starts a binary with its stdout captured line by line.
fn spawn_logged(
    bin: &Path,
    config: &str,
    env: &[(String, String)],
) -> (Proc, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead as _;
    let mut child = command(bin, config, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Proc(child), rx)
}

/// The first JSON log line for which `pick` is true (waits up to 5 s).
fn find_json(rx: &std::sync::mpsc::Receiver<String>, pick: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("no matching log line within 5 s");
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if pick(&v) {
            return v;
        }
    }
}

#[tokio::test]
async fn logs_are_json_with_the_request_id_and_the_trace_reaches_the_backend() {
    let c = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    let (proxy_bin, backend_bin) = binaries();
    let (api, admin, public, padmin) = (free_port(), free_port(), free_port(), free_port());
    let (_backend, backend_log) = spawn_logged(
        &backend_bin,
        "config/test/backend.toml",
        &[
            (
                "TODO_BACKEND__SERVER__LISTEN".into(),
                format!("127.0.0.1:{api}"),
            ),
            (
                "TODO_BACKEND__ADMIN__LISTEN".into(),
                format!("127.0.0.1:{admin}"),
            ),
            (
                "TODO_BACKEND__DATABASE__URL".into(),
                format!("sqlite:{}", dir.path().join("t.db").display()),
            ),
            ("TODO_BACKEND__LOG__FORMAT".into(), "json".into()),
            (
                "TODO_BACKEND__LOG__FILTER".into(),
                "info,tower_http=debug".into(),
            ),
        ],
    );
    wait_ready(&c, &format!("http://127.0.0.1:{admin}/health/ready")).await;
    let (_proxy, proxy_log) = spawn_logged(
        &proxy_bin,
        "config/test/proxy.toml",
        &[
            ("EDGE_PROXY__LISTEN".into(), format!("127.0.0.1:{public}")),
            (
                "EDGE_PROXY__ADMIN__LISTEN".into(),
                format!("127.0.0.1:{padmin}"),
            ),
            (
                "EDGE_PROXY__UPSTREAMS__TODO__PEERS".into(),
                format!("[\"127.0.0.1:{api}\"]"),
            ),
            ("EDGE_PROXY__LOG__FORMAT".into(), "json".into()),
            ("EDGE_PROXY__LOG__FILTER".into(), "info".into()),
        ],
    );
    wait_ready(&c, &format!("http://127.0.0.1:{padmin}/readyz")).await;

    let request_id = uuid::Uuid::new_v4().to_string();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = c
        .get(format!("http://127.0.0.1:{public}/openapi.json"))
        .header("x-request-id", &request_id)
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], request_id.as_str());

    let access = find_json(&proxy_log, |v| {
        v["target"] == "access" && v["request_id"] == request_id.as_str()
    });
    assert_eq!(
        (access["route"].as_str(), access["status"].as_u64()),
        (Some("openapi"), Some(200)),
        "{access}"
    );
    assert_eq!(access["trace_id"], trace_id);
    assert_eq!(access["upstream"], "todo");
    assert!(access["duration_ms"].as_f64().is_some());
    let backend = find_json(&backend_log, |v| {
        v["span"]["request_id"] == request_id.as_str()
    });
    assert_eq!(
        backend["span"]["trace_id"], trace_id,
        "the trace reached the backend: {backend}"
    );
}

/// `name{labels}` from a Prometheus text page (0 when absent).
fn metric(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn four_thousand_cut_heads_write_a_bounded_log_and_are_all_counted() {
    // Issue 18: every cut head used to be an ERROR line; now they are counted, logged at info, and
    // capped per second with a summary of what was suppressed.
    const HEADS: usize = 4_000;
    const ADDRESSES: u8 = 40;
    let c = reqwest::Client::new();
    let (bin, _) = binaries();
    let (public, admin) = (free_port(), free_port());
    let env = vec![
        ("EDGE_PROXY__LISTEN".into(), format!("127.0.0.1:{public}")),
        (
            "EDGE_PROXY__ADMIN__LISTEN".into(),
            format!("127.0.0.1:{admin}"),
        ),
        ("EDGE_PROXY__LIMITS__HEADER_TIMEOUT_MS".into(), "300".into()),
        // Info, so that the capped lines show: the cap, not the filter, bounds them.
        ("EDGE_PROXY__LOG__FILTER".into(), "info".into()),
    ];
    let (_proxy, log) = spawn_logged(&bin, "config/test/proxy.toml", &env);
    wait_ready(&c, &format!("http://127.0.0.1:{admin}/readyz")).await;
    let started = std::time::Instant::now();
    // In batches of a thousand, 25 per address (under the per-address connection limit).
    for batch in 0..HEADS / 1_000 {
        let mut heads = tokio::task::JoinSet::new();
        for i in 0..1_000 {
            let from = std::net::Ipv4Addr::new(127, 0, 1, 1 + (i % usize::from(ADDRESSES)) as u8);
            heads.spawn(async move {
                use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind((from, 0).into()).unwrap();
                let mut s = socket
                    .connect(([127, 0, 0, 1], public).into())
                    .await
                    .unwrap();
                s.write_all(b"GET /public/x HTTP/1.1\r\nHost: a\r\n")
                    .await
                    .unwrap();
                let mut rest = Vec::new();
                // The proxy closes the connection at the head deadline.
                let _ =
                    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
            });
        }
        while let Some(done) = heads.join_next().await {
            done.unwrap_or_else(|e| panic!("batch {batch}: {e}"));
        }
    }
    let page = c
        .get(format!("http://127.0.0.1:{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let cut = metric(
        &page,
        "edge_proxy_connections_refused_total{reason=\"header_timeout\"}",
    );
    assert_eq!(cut, HEADS as f64, "every cut head is counted");
    // One more cut after a pause makes the cap report what it suppressed.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", public))
            .await
            .unwrap();
        s.write_all(b"GET /public/x HTTP/1.1\r\n").await.unwrap();
        let _ = s.read_to_end(&mut Vec::new()).await;
    }
    let seconds = started.elapsed().as_secs() + 1;
    let (mut about_heads, mut errors, mut suppressed) = (0u64, 0u64, 0u64);
    while let Ok(line) = log.recv_timeout(Duration::from_millis(500)) {
        if line.contains("Downstream") {
            about_heads += 1;
            if line.contains("ERROR") {
                errors += 1;
            }
        }
        if let Some(n) = line
            .split("suppressed ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
        {
            suppressed += n;
        }
    }
    assert_eq!(errors, 0, "a client's broken connection is not an error");
    let cap = 5 * (seconds + 1);
    assert!(
        (1..=cap).contains(&about_heads),
        "{about_heads} lines about cut heads in {seconds} s (cap {cap})"
    );
    assert_eq!(
        about_heads + suppressed,
        HEADS as u64 + 1,
        "every cut head is either logged or counted as suppressed"
    );
}
