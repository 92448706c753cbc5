//! Validated proxy configuration. `raw.rs` mirrors the TOML file and imports nothing from the
//! crate; each domain module owns its config type and validates its own section (`JwtConfig::from_raw`
//! in `tokens::own`, `routes_from_raw` in `policy::routing`, …); `Config::from_raw` only assembles
//! them, reporting every problem at once, naming each key. Dependencies point one way: domain modules
//! never import this one. Env overrides use the prefix `EDGE_PROXY` (`EDGE_PROXY__JWT__LIFETIME_SECONDS=600`);
//! secrets can be given as `*_file`. Paths are relative to the config file's directory.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use settings::{ConfigError, Problems, SecretSource};

use crate::http::body::BodyTimeouts;
use crate::http::conn::ConnLimits;
use crate::http::upstream::UpstreamConfig;
use crate::login::SessionsConfig;
use crate::policy::client::IpNet;
use crate::policy::routing::Route;
use crate::raw::{RawAdmin, RawServer, RawStore};
use crate::tokens::assertion::IdentityConfig;
use crate::tokens::issuer::IssuerConfig;
use crate::tokens::own::JwtConfig;

pub use crate::raw::RawConfig;

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "EDGE_PROXY";

pub use settings::LogFormat;

#[derive(Debug)]
pub struct ServerSettings {
    pub threads: usize,
    pub grace_period: Duration,
    pub graceful_shutdown_timeout: Duration,
    pub upstream_keepalive_pool_size: usize,
    pub keepalive_idle: Duration,
    /// `None`: no limit.
    pub keepalive_requests: Option<u32>,
}

#[derive(Debug)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub token: SecretString,
}

#[derive(Debug)]
pub enum StoreBackend {
    Memory,
    Redis { url: SecretString },
}

#[derive(Debug)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    pub key_prefix: String,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub trusted_proxies: Vec<IpNet>,
    pub server: ServerSettings,
    pub admin: AdminConfig,
    pub store: StoreConfig,
    pub jwt: JwtConfig,
    pub identity: IdentityConfig,
    pub sessions: SessionsConfig,
    pub login: crate::throttle::ThrottlePolicy,
    /// `login.max_concurrent_checks`: credential checks in flight per proxy.
    pub max_concurrent_checks: usize,
    pub max_body_bytes: u64,
    pub body_timeouts: BodyTimeouts,
    pub websocket: crate::http::body::WebSocketLimits,
    pub connections: ConnLimits,
    pub upstreams: Vec<UpstreamConfig>,
    pub routes: Vec<Route>,
    /// External token issuers (R-JWT-9).
    pub issuers: Vec<IssuerConfig>,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub access_log: bool,
    pub request_metrics: bool,
    /// (name, value) pairs added to every answer unless already present.
    pub security_headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// The edge cache's storage limits (`[cache]`).
    pub cache: CacheSettings,
}

/// `[cache]`, validated.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    pub max_memory_bytes: u64,
    pub max_object_bytes: usize,
    pub lock_timeout: Duration,
}

impl CacheSettings {
    fn from_raw(raw: &crate::raw::RawCache, p: &mut Problems) -> Self {
        if raw.max_object_bytes == 0 || raw.max_object_bytes > raw.max_memory_bytes {
            p.push("cache.max_object_bytes: must be between 1 and cache.max_memory_bytes");
        }
        if raw.lock_timeout_ms == 0 {
            p.push("cache.lock_timeout_ms: must be greater than 0");
        }
        Self {
            max_memory_bytes: raw.max_memory_bytes,
            max_object_bytes: usize::try_from(raw.max_object_bytes).unwrap_or(usize::MAX),
            lock_timeout: Duration::from_millis(raw.lock_timeout_ms),
        }
    }
}

impl Config {
    /// The API version compatibility matrix of `path`'s versioned routes, as Markdown (`edge-proxy
    /// versions`). Only the routes, upstreams and versioning schemes are validated, so it runs
    /// where the secrets are not (a docs build, a laptop).
    pub fn versions_matrix(
        path: &Path,
        env: &HashMap<String, String>,
    ) -> Result<String, ConfigError> {
        let loaded = settings::load_file::<RawConfig>(path, env, ENV_PREFIX)?;
        let mut p = Problems::default();
        let routes = crate::policy::routing::routes_from_raw(&loaded.raw, &mut p);
        p.into_result()?;
        let versioned: Vec<_> = routes
            .iter()
            .filter_map(|r| {
                Some((
                    r.name.as_str(),
                    r.upstream.as_str(),
                    r.versioning.as_deref()?,
                ))
            })
            .collect();
        if versioned.is_empty() {
            return Ok("No route opts into API versioning (`versioning = \"<scheme>\"`).\n".into());
        }
        Ok(crate::policy::versioning::matrix(versioned))
    }

    /// Loads `path` with env overrides from `env` and validates it.
    pub fn load(path: &Path, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let loaded = settings::load_file::<RawConfig>(path, env, ENV_PREFIX)?;
        Self::from_raw(loaded.raw, &loaded.base_dir)
    }

    /// Parses TOML text (tests); relative paths resolve against `base_dir`.
    pub fn from_toml(
        text: &str,
        env: &HashMap<String, String>,
        base_dir: &Path,
    ) -> Result<Self, ConfigError> {
        let raw =
            settings::parse_str::<RawConfig>(text, env, ENV_PREFIX).map_err(ConfigError::single)?;
        Self::from_raw(raw, base_dir)
    }

    pub fn from_raw(raw: RawConfig, base_dir: &Path) -> Result<Self, ConfigError> {
        let mut p = Problems::default();
        let listen = p.take(parse_addr("listen", &raw.listen));
        let trusted_proxies = crate::policy::client::nets_from_raw(&raw.trusted_proxies, &mut p);
        let server = ServerSettings::from_raw(&raw.server, &mut p);
        let admin = AdminConfig::from_raw(&raw.admin, base_dir, &mut p);
        let store = StoreConfig::from_raw(&raw.store, base_dir, &mut p);
        let jwt = JwtConfig::from_raw(&raw.jwt, base_dir, &mut p);
        let issuers = crate::tokens::issuer::issuers_from_raw(
            &raw.issuers,
            &raw.jwt.issuer,
            base_dir,
            &mut p,
        );
        let identity = IdentityConfig::from_raw(&raw.identity, base_dir, &mut p);
        let upstreams: Vec<UpstreamConfig> = (raw.upstreams.iter())
            .map(|(name, u)| UpstreamConfig::from_raw(name, u, &mut p))
            .collect();
        let sessions = SessionsConfig::from_raw(&raw.sessions, &raw.upstreams, &mut p);
        let login = p.take(crate::throttle::ThrottlePolicy::from_raw(&raw.login));
        let body_timeouts = BodyTimeouts::from_raw(&raw.limits, &mut p);
        let websocket = crate::http::body::WebSocketLimits::from_raw(&raw.limits, &mut p);
        let connections = ConnLimits::from_raw(&raw.limits, &trusted_proxies, &mut p);
        let routes = crate::policy::routing::routes_from_raw(&raw, &mut p);
        let log_format = p.take(LogFormat::parse(&raw.log.format));
        let security_headers =
            crate::http::respond::security_headers_from_raw(&raw.security_headers, &mut p);
        let cache = CacheSettings::from_raw(&raw.cache, &mut p);
        p.into_result()?;
        // Every part that can be missing pushed a problem, so this only fails on a bug.
        let assembled = || {
            Some(Self {
                listen: listen?,
                trusted_proxies,
                server,
                admin: admin?,
                store: store?,
                jwt: jwt?,
                identity: identity?,
                sessions,
                login: login?,
                max_concurrent_checks: raw.login.max_concurrent_checks,
                max_body_bytes: raw.limits.max_body_bytes,
                body_timeouts,
                websocket,
                connections,
                upstreams,
                routes,
                issuers,
                log_format: log_format?,
                log_filter: raw.log.filter,
                access_log: raw.log.access,
                security_headers,
                request_metrics: raw.metrics.enabled,
                cache,
            })
        };
        assembled().ok_or_else(|| ConfigError::single("invalid configuration"))
    }
}

impl ServerSettings {
    fn from_raw(s: &RawServer, p: &mut Problems) -> Self {
        if s.threads == 0 {
            p.push("server.threads: must be at least 1");
        }
        Self {
            threads: s.threads,
            grace_period: Duration::from_secs(s.grace_period_seconds),
            graceful_shutdown_timeout: Duration::from_secs(s.graceful_shutdown_timeout_seconds),
            upstream_keepalive_pool_size: s.upstream_keepalive_pool_size,
            keepalive_idle: Duration::from_secs(s.keepalive_idle_seconds),
            keepalive_requests: (s.keepalive_requests > 0).then_some(s.keepalive_requests),
        }
    }
}

impl AdminConfig {
    fn from_raw(a: &RawAdmin, base_dir: &Path, p: &mut Problems) -> Option<Self> {
        let listen = p.take(parse_addr("admin.listen", &a.listen));
        let token = p
            .take(
                SecretSource {
                    name: "admin.token",
                    inline: a.token.as_deref(),
                    file: a.token_file.as_deref(),
                }
                .require(base_dir),
            )
            .and_then(|t| p.take(settings::opaque_token("admin.token", &t).map(|()| t)));
        Some(Self {
            listen: listen?,
            token: token?,
        })
    }
}

impl StoreConfig {
    fn from_raw(s: &RawStore, base_dir: &Path, p: &mut Problems) -> Option<Self> {
        let backend = match s.backend.as_str() {
            "memory" => {
                if s.redis_url.is_some() || s.redis_url_file.is_some() {
                    p.push("store.redis_url: set, but store.backend is `memory`");
                }
                Some(StoreBackend::Memory)
            }
            "redis" => p
                .take(
                    SecretSource {
                        name: "store.redis_url",
                        inline: s.redis_url.as_deref(),
                        file: s.redis_url_file.as_deref(),
                    }
                    .require(base_dir),
                )
                .map(|url| StoreBackend::Redis { url }),
            other => {
                p.push(format!(
                    "store.backend: `{other}` is not one of memory, redis"
                ));
                None
            }
        };
        if s.timeout_ms == 0 {
            p.push("store.timeout_ms: must be greater than 0");
        }
        Some(Self {
            backend: backend?,
            key_prefix: s.key_prefix.clone(),
            timeout: Duration::from_millis(s.timeout_ms),
        })
    }
}

fn parse_addr(key: &str, v: &str) -> Result<SocketAddr, String> {
    v.parse()
        .map_err(|_| format!("{key}: `{v}` is not an address like 127.0.0.1:8080"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn profile(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../config")
            .join(name)
            .join("proxy.toml")
    }

    /// Secrets as a deployment mounts them (the dev ones are generated on first run).
    fn mounted(dir: &Path, redis: bool) -> HashMap<String, String> {
        let write = |name: &str, value: &str| {
            let p = dir.join(name);
            std::fs::write(&p, value).unwrap();
            p.display().to_string()
        };
        let mut env = HashMap::from([
            (
                format!("{ENV_PREFIX}__JWT__KEY_FILE"),
                write("jwt", "bzY5rOYUNEXYxpdnWPGmsnaEoygAgxash5EknaSJJ1Q=\n"),
            ),
            (
                format!("{ENV_PREFIX}__IDENTITY__SECRET_FILE"),
                write("identity", "HXw4qurOD7vywUEzJxPZmIyFjNHK0yHkmgOg/+cgdkc=\n"),
            ),
            (
                format!("{ENV_PREFIX}__ADMIN__TOKEN_FILE"),
                write("admin", "an-admin-token-for-config-tests-0123456789\n"),
            ),
        ]);
        if redis {
            env.insert(
                format!("{ENV_PREFIX}__STORE__REDIS_URL_FILE"),
                write("redis", "redis://edge@127.0.0.1:6379/0\n"),
            );
        }
        env
    }

    #[test]
    fn the_test_profile_loads_as_shipped() {
        let c = Config::load(&profile("test"), &HashMap::new()).unwrap();
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.admin.listen.port(), 9901);
        assert!(matches!(c.store.backend, StoreBackend::Memory));
        assert!(c
            .routes
            .iter()
            .any(|r| r.auth == crate::policy::routing::AuthMode::Required));
    }

    #[test]
    fn the_dev_profile_loads_with_its_generated_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::load(&profile("dev"), &mounted(dir.path(), false)).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn the_prod_profile_loads_with_mounted_secrets_and_redacts_them() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::load(&profile("prod"), &mounted(dir.path(), true)).unwrap();
        assert!(matches!(c.store.backend, StoreBackend::Redis { .. }));
        assert_eq!(c.log_format, LogFormat::Json);
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("edge@127.0.0.1"),
            "redis url leaked: {debug}"
        );
        assert!(!debug.contains("an-admin-token"), "admin token leaked");
    }

    #[test]
    fn every_problem_is_reported_at_once_naming_the_key() {
        let text = r#"
            listen = "nope"
            [store]
            backend = "etcd"
            [jwt]
            key = "short"
            algorithm = "none"
            [identity]
            secret = "c2hvcnQ="
            [[routes]]
            name = "a b"
            prefix = "api/"
            upstream = "missing"
            auth = "sometimes"
            methods = ["TRACE"]
        "#;
        let err = Config::from_toml(text, &HashMap::new(), Path::new("."))
            .unwrap_err()
            .to_string();
        for key in [
            "listen",
            "admin.token",
            "store.backend",
            "jwt.algorithm",
            "jwt.key",
            "identity.secret",
            "sessions.upstream",
            ".name",
            ".prefix",
            ".upstream",
            ".auth",
            ".methods",
        ] {
            assert!(err.contains(key), "{key} missing from:\n{err}");
        }
    }

    #[test]
    fn login_defaults_are_the_security_table_and_the_test_profile_counts_in_seconds() {
        let dir = tempfile::tempdir().unwrap();
        let prod = Config::load(&profile("prod"), &mounted(dir.path(), true)).unwrap();
        assert_eq!(prod.login, crate::throttle::ThrottlePolicy::default());
        let test = Config::load(&profile("test"), &HashMap::new()).unwrap();
        assert_eq!(
            (test.login.backoff_base_ms, test.login.max_wait_ms),
            (1_000, 60_000)
        );
        let err = Config::from_toml(
            "[jwt]\n[identity]\n[login]\nmax_failures = 101\n",
            &HashMap::new(),
            Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("login.max_failures"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = Config::from_toml(
            "listne = \"127.0.0.1:1\"\n[jwt]\n[identity]\n",
            &HashMap::new(),
            Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("listne"), "{err}");
    }
}
