//! Validated proxy configuration. `config/raw.rs` mirrors the TOML file; `Config::from_raw` checks
//! every field, reports all problems at once naming each key, and produces the typed values the rest of
//! the proxy uses. Env overrides use the prefix `EDGE_PROXY` (`EDGE_PROXY__JWT__LIFETIME_SECONDS=600`);
//! secrets can be given as `*_file`. Paths are relative to the config file's directory.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::Method;
use secrecy::SecretString;
use settings::{ConfigError, Problems, SecretSource};

use crate::identity::IpNet;
use crate::issuers::IssuerConfig;
use crate::keys::{OwnKey, SigningAlg};

pub mod raw;

pub use raw::RawConfig;

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "EDGE_PROXY";

/// Methods a route allows when its `methods` key is absent.
pub const DEFAULT_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// R-JWT: lifetimes above this are refused; a leaked key must not mint long-lived tokens.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// A valid token is needed; none → 401.
    Required,
    /// A token is verified when present; requests without one pass anonymously.
    Optional,
    /// Tokens are ignored (identity headers are still stripped).
    None,
}

pub use settings::LogFormat;

#[derive(Debug)]
pub struct ServerSettings {
    pub threads: usize,
    pub grace_period: Duration,
    pub graceful_shutdown_timeout: Duration,
    pub upstream_keepalive_pool_size: usize,
    pub keepalive_idle: Duration,
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
pub struct JwtConfig {
    pub algorithm: SigningAlg,
    /// Signs new tokens and verifies.
    pub key: OwnKey,
    /// Verifies only, until its grace period ends (key rotation).
    pub previous: Option<PreviousKey>,
    pub issuer: String,
    pub audience: String,
    pub lifetime: Duration,
    pub leeway: Duration,
    pub realm: String,
}

#[derive(Debug)]
pub struct PreviousKey {
    pub key: OwnKey,
    /// Unix time after which the previous key no longer verifies.
    pub verify_until: i64,
}

#[derive(Debug)]
pub struct IdentityConfig {
    pub algorithm: SigningAlg,
    pub key: OwnKey,
    pub issuer: String,
    pub lifetime: Duration,
}

#[derive(Debug, Clone)]
pub struct SessionsConfig {
    pub login_path: String,
    pub logout_path: String,
    pub logout_all_path: String,
    pub upstream: String,
    pub verify_path: String,
    pub max_body_bytes: u64,
    pub verify_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub name: String,
    /// `host:port`; host names are resolved once at start-up.
    pub peers: Vec<String>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub health_check_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    pub prefix: String,
    /// Matches `prefix` only, not the paths below it.
    pub exact: bool,
    pub upstream: String,
    pub auth: AuthMode,
    pub methods: Vec<Method>,
    pub max_body_bytes: u64,
    pub cors: Option<std::sync::Arc<crate::cors::CorsPolicy>>,
}

/// Slow-body protection (R-HTTP table).
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeouts {
    pub idle: Duration,
    pub min_rate_bytes_per_sec: u64,
    pub grace: Duration,
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
    pub connections: crate::conn::ConnLimits,
    pub upstreams: Vec<UpstreamConfig>,
    pub routes: Vec<RouteConfig>,
    /// External token issuers (R-JWT-9).
    pub issuers: Vec<IssuerConfig>,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub access_log: bool,
    pub request_metrics: bool,
    /// (name, value) pairs added to every answer unless already present.
    pub security_headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

impl Config {
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
        let trusted_proxies: Vec<IpNet> = raw
            .trusted_proxies
            .iter()
            .filter_map(|t| p.take(IpNet::parse(t).map_err(|e| format!("trusted_proxies: {e}"))))
            .collect();

        let s = &raw.server;
        if s.threads == 0 {
            p.push("server.threads: must be at least 1");
        }

        let admin_listen = p.take(parse_addr("admin.listen", &raw.admin.listen));
        let admin_token = p
            .take(
                SecretSource {
                    name: "admin.token",
                    inline: raw.admin.token.as_deref(),
                    file: raw.admin.token_file.as_deref(),
                }
                .require(base_dir),
            )
            .and_then(|t| p.take(settings::opaque_token("admin.token", &t).map(|()| t)));

        let store_backend = match raw.store.backend.as_str() {
            "memory" => {
                if raw.store.redis_url.is_some() || raw.store.redis_url_file.is_some() {
                    p.push("store.redis_url: set, but store.backend is `memory`");
                }
                Some(StoreBackend::Memory)
            }
            "redis" => p
                .take(
                    SecretSource {
                        name: "store.redis_url",
                        inline: raw.store.redis_url.as_deref(),
                        file: raw.store.redis_url_file.as_deref(),
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
        if raw.store.timeout_ms == 0 {
            p.push("store.timeout_ms: must be greater than 0");
        }

        let j = &raw.jwt;
        let algorithm = p.take(SigningAlg::parse(&j.algorithm));
        let jwt_key = p
            .take(
                SecretSource {
                    name: "jwt.key",
                    inline: j.key.as_deref(),
                    file: j.key_file.as_deref(),
                }
                .require(base_dir),
            )
            // With an unknown algorithm the key is still checked (as HS256), so every problem shows.
            .and_then(|k| {
                let alg = algorithm.unwrap_or(SigningAlg::Hs256);
                p.take(OwnKey::parse(alg, "jwt.key", &k, j.key_id.clone()))
            });
        let previous_key = j.previous.as_ref().and_then(|prev| {
            let until = p.take(parse_rfc3339("jwt.previous.verify_until", &prev.verify_until));
            if prev.key_id.is_none() || j.key_id.is_none() || prev.key_id == j.key_id {
                p.push("jwt.previous.key_id: rotation needs distinct key ids on jwt.key_id and jwt.previous.key_id");
            }
            let key = p
                .take(
                    SecretSource {
                        name: "jwt.previous.key",
                        inline: prev.key.as_deref(),
                        file: prev.key_file.as_deref(),
                    }
                    .require(base_dir),
                )
                .zip(algorithm)
                .and_then(|(k, alg)| {
                    p.take(OwnKey::parse(alg, "jwt.previous.key", &k, prev.key_id.clone()))
                })?;
            Some(PreviousKey {
                key,
                verify_until: until?,
            })
        });
        if j.lifetime_seconds == 0 || j.lifetime_seconds > MAX_TOKEN_LIFETIME_SECS {
            p.push(format!(
                "jwt.lifetime_seconds: must be between 1 and {MAX_TOKEN_LIFETIME_SECS}"
            ));
        }
        if j.leeway_seconds > 300 {
            p.push("jwt.leeway_seconds: must be at most 300");
        }
        for (key, v) in [("jwt.issuer", &j.issuer), ("jwt.audience", &j.audience)] {
            if v.is_empty() {
                p.push(format!("{key}: must not be empty"));
            }
        }
        if j.realm.is_empty() || j.realm.contains(['"', '\\']) || !j.realm.is_ascii() {
            p.push("jwt.realm: must be non-empty printable ASCII without quotes or backslashes");
        }

        let issuers: Vec<IssuerConfig> = raw
            .issuers
            .iter()
            .enumerate()
            .filter_map(|(i, issuer)| {
                IssuerConfig::from_raw(i, issuer, base_dir)
                    .map_err(|errors| errors.into_iter().for_each(|e| p.push(e)))
                    .ok()
            })
            .collect();
        let mut issuer_names = std::collections::HashSet::new();
        for (i, issuer) in raw.issuers.iter().enumerate() {
            if issuer.iss == j.issuer {
                p.push(format!("issuers[{i}].iss: must differ from jwt.issuer, so own and external tokens can never stand in for each other"));
            }
            if !issuer_names.insert(&issuer.name) {
                p.push(format!(
                    "issuers[{i}].name: duplicate issuer name `{}`",
                    issuer.name
                ));
            }
            if raw.issuers[..i].iter().any(|other| other.iss == issuer.iss) {
                p.push(format!(
                    "issuers[{i}].iss: duplicate issuer `{}`",
                    issuer.iss
                ));
            }
        }

        let identity_alg = p.take(
            SigningAlg::parse(&raw.identity.algorithm).map_err(|e| e.replace("jwt.", "identity.")),
        );
        let identity_secret = p
            .take(
                SecretSource {
                    name: "identity.secret",
                    inline: raw.identity.secret.as_deref(),
                    file: raw.identity.secret_file.as_deref(),
                }
                .require(base_dir),
            )
            .and_then(|k| {
                let alg = identity_alg.unwrap_or(SigningAlg::Hs256);
                p.take(OwnKey::parse(alg, "identity.secret", &k, None))
            });
        if raw.identity.lifetime_seconds == 0 || raw.identity.lifetime_seconds > 60 {
            p.push("identity.lifetime_seconds: must be between 1 and 60 (R-ID-5)");
        }

        let upstreams: Vec<UpstreamConfig> = raw
            .upstreams
            .iter()
            .map(|(name, u)| {
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                    p.push(format!("upstreams.{name}: use letters, digits, `-` and `_` in upstream names (they are metric labels)"));
                }
                if u.peers.is_empty() {
                    p.push(format!("upstreams.{name}.peers: at least one peer is required"));
                }
                for peer in &u.peers {
                    if !valid_peer(peer) {
                        p.push(format!("upstreams.{name}.peers: `{peer}` is not host:port"));
                    }
                }
                if u.connect_timeout_ms == 0 || u.read_timeout_ms == 0 || u.health_check_interval_ms == 0 {
                    p.push(format!("upstreams.{name}: timeouts and the health-check interval must be greater than 0"));
                }
                UpstreamConfig {
                    name: name.clone(),
                    peers: u.peers.clone(),
                    connect_timeout: Duration::from_millis(u.connect_timeout_ms),
                    read_timeout: Duration::from_millis(u.read_timeout_ms),
                    health_check_interval: Duration::from_millis(u.health_check_interval_ms),
                }
            })
            .collect();

        let sess = &raw.sessions;
        for (key, path) in [
            ("sessions.login_path", &sess.login_path),
            ("sessions.logout_path", &sess.logout_path),
            ("sessions.logout_all_path", &sess.logout_all_path),
            ("sessions.verify_path", &sess.verify_path),
        ] {
            if !path.starts_with('/') {
                p.push(format!("{key}: must start with /"));
            }
        }
        if !raw.upstreams.contains_key(&sess.upstream) {
            p.push(format!(
                "sessions.upstream: no upstream named `{}` (define [upstreams.{}])",
                sess.upstream, sess.upstream
            ));
        }
        if sess.max_body_bytes == 0 || sess.max_body_bytes > 65_536 {
            p.push("sessions.max_body_bytes: must be between 1 and 65536");
        }

        let login = p.take(login_policy(&raw.login));
        if raw.login.max_concurrent_checks == 0 {
            p.push("login.max_concurrent_checks: must be at least 1");
        }

        if raw.limits.body_idle_timeout_ms == 0 {
            p.push("limits.body_idle_timeout_ms: must be greater than 0");
        }
        if raw.limits.header_timeout_ms == 0 {
            p.push("limits.header_timeout_ms: must be greater than 0");
        }
        if raw.limits.max_body_bytes == 0 {
            p.push("limits.max_body_bytes: must be greater than 0");
        }

        let mut cors = std::collections::HashMap::new();
        for (name, c) in &raw.cors {
            match crate::cors::CorsPolicy::from_config(
                name,
                &c.allowed_origins,
                c.allow_credentials,
                &c.allow_headers,
                &c.expose_headers,
                c.max_age_seconds,
            ) {
                Ok(policy) => {
                    cors.insert(name.clone(), std::sync::Arc::new(policy));
                }
                Err(errors) => errors.into_iter().for_each(|e| p.push(e)),
            }
        }

        let mut routes = Vec::new();
        let mut names = std::collections::HashSet::new();
        let mut prefixes = std::collections::HashSet::new();
        for (i, r) in raw.routes.iter().enumerate() {
            let key = format!("routes[{i}] ({})", r.name);
            if r.name.is_empty()
                || !r
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                p.push(format!(
                    "{key}.name: use letters, digits, `-` and `_` (it is a metric label)"
                ));
            }
            if !names.insert(r.name.clone()) {
                p.push(format!("{key}.name: duplicate route name"));
            }
            if !valid_prefix(&r.prefix) {
                p.push(format!(
                    "{key}.prefix: `{}` must start with / and not end with / (except `/` itself)",
                    r.prefix
                ));
            }
            if !prefixes.insert((r.prefix.clone(), r.exact)) {
                p.push(format!("{key}.prefix: duplicate prefix `{}`", r.prefix));
            }
            if !raw.upstreams.contains_key(&r.upstream) {
                p.push(format!(
                    "{key}.upstream: no upstream named `{}`",
                    r.upstream
                ));
            }
            let auth = match r.auth.as_str() {
                "required" => Some(AuthMode::Required),
                "optional" => Some(AuthMode::Optional),
                "none" => Some(AuthMode::None),
                other => {
                    p.push(format!(
                        "{key}.auth: `{other}` is not one of required, optional, none"
                    ));
                    None
                }
            };
            let methods: Vec<Method> = match &r.methods {
                None => DEFAULT_METHODS
                    .iter()
                    .map(|m| parse_method(m).unwrap_or(Method::GET))
                    .collect(),
                Some(list) => list
                    .iter()
                    .filter_map(|m| {
                        p.take(parse_method(m).map_err(|e| format!("{key}.methods: {e}")))
                    })
                    .collect(),
            };
            let route_cors = match &r.cors {
                None => None,
                Some(name) => {
                    let policy = cors.get(name).cloned();
                    if policy.is_none() && !raw.cors.contains_key(name) {
                        p.push(format!(
                            "{key}.cors: no CORS policy named `{name}` (define [cors.{name}])"
                        ));
                    }
                    policy
                }
            };
            if r.max_body_bytes == Some(0) {
                p.push(format!("{key}.max_body_bytes: must be greater than 0"));
            }
            if let Some(auth) = auth {
                routes.push(RouteConfig {
                    name: r.name.clone(),
                    prefix: r.prefix.clone(),
                    exact: r.exact,
                    upstream: r.upstream.clone(),
                    auth,
                    methods,
                    max_body_bytes: r.max_body_bytes.unwrap_or(raw.limits.max_body_bytes),
                    cors: route_cors,
                });
            }
        }

        let log_format = p.take(LogFormat::parse(&raw.log.format));

        let mut security_headers = Vec::new();
        for (key, name, value) in [
            (
                "security_headers.content_type_options",
                "x-content-type-options",
                &raw.security_headers.content_type_options,
            ),
            (
                "security_headers.referrer_policy",
                "referrer-policy",
                &raw.security_headers.referrer_policy,
            ),
            (
                "security_headers.frame_options",
                "x-frame-options",
                &raw.security_headers.frame_options,
            ),
            (
                "security_headers.strict_transport_security",
                "strict-transport-security",
                &raw.security_headers.strict_transport_security,
            ),
        ] {
            if value.is_empty() {
                continue;
            }
            match http::HeaderValue::from_str(value) {
                Ok(v) => security_headers.push((http::HeaderName::from_static(name), v)),
                Err(_) => p.push(format!("{key}: `{value}` is not a valid header value")),
            }
        }

        p.into_result()?;
        let (
            Some(listen),
            Some(admin_listen),
            Some(admin_token),
            Some(backend),
            Some(jwt_key),
            Some(jwt_key_alg),
            Some(identity_secret),
            Some(log_format),
            Some(login),
        ) = (
            listen,
            admin_listen,
            admin_token,
            store_backend,
            jwt_key,
            algorithm,
            identity_secret,
            log_format,
            login,
        )
        else {
            return Err(ConfigError::single("invalid configuration"));
        };
        Ok(Self {
            listen,
            trusted_proxies: trusted_proxies.clone(),
            server: ServerSettings {
                threads: s.threads,
                grace_period: Duration::from_secs(s.grace_period_seconds),
                graceful_shutdown_timeout: Duration::from_secs(s.graceful_shutdown_timeout_seconds),
                upstream_keepalive_pool_size: s.upstream_keepalive_pool_size,
                keepalive_idle: Duration::from_secs(s.keepalive_idle_seconds),
            },
            admin: AdminConfig {
                listen: admin_listen,
                token: admin_token,
            },
            store: StoreConfig {
                backend,
                key_prefix: raw.store.key_prefix,
                timeout: Duration::from_millis(raw.store.timeout_ms),
            },
            jwt: JwtConfig {
                algorithm: jwt_key_alg,
                key: jwt_key,
                previous: previous_key,
                issuer: raw.jwt.issuer,
                audience: raw.jwt.audience,
                lifetime: Duration::from_secs(raw.jwt.lifetime_seconds),
                leeway: Duration::from_secs(raw.jwt.leeway_seconds),
                realm: raw.jwt.realm,
            },
            identity: IdentityConfig {
                algorithm: identity_alg.unwrap_or(SigningAlg::Hs256),
                key: identity_secret,
                issuer: raw.identity.issuer,
                lifetime: Duration::from_secs(raw.identity.lifetime_seconds),
            },
            sessions: SessionsConfig {
                login_path: sess.login_path.clone(),
                logout_path: sess.logout_path.clone(),
                logout_all_path: sess.logout_all_path.clone(),
                upstream: sess.upstream.clone(),
                verify_path: sess.verify_path.clone(),
                max_body_bytes: sess.max_body_bytes,
                verify_timeout: Duration::from_millis(sess.verify_timeout_ms),
            },
            login,
            max_concurrent_checks: raw.login.max_concurrent_checks,
            max_body_bytes: raw.limits.max_body_bytes,
            body_timeouts: BodyTimeouts {
                idle: Duration::from_millis(raw.limits.body_idle_timeout_ms),
                min_rate_bytes_per_sec: raw.limits.body_min_rate_bytes_per_sec,
                grace: Duration::from_millis(raw.limits.body_min_rate_grace_ms),
            },
            connections: crate::conn::ConnLimits {
                header_timeout: Duration::from_millis(raw.limits.header_timeout_ms),
                max_per_ip: raw.limits.max_connections_per_ip,
                exempt: trusted_proxies.clone(),
            },
            upstreams,
            routes,
            issuers,
            log_format,
            log_filter: raw.log.filter,
            access_log: raw.log.access,
            security_headers,
            request_metrics: raw.metrics.enabled,
        })
    }
}

/// Parses an RFC 3339 time into unix seconds.
fn parse_rfc3339(key: &str, text: &str) -> Result<i64, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(time::OffsetDateTime::unix_timestamp)
        .map_err(|_| format!("{key}: `{text}` is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)"))
}

/// Upper bound of `login.max_failures`: NIST SP 800-63B 5.2.2 and ASVS V2.2.1 allow at most 100.
pub const MAX_LOGIN_FAILURES: u32 = 100;

fn login_policy(l: &raw::RawLogin) -> Result<crate::throttle::ThrottlePolicy, String> {
    let mut problems = Vec::new();
    if l.backoff_after == 0 {
        problems.push("login.backoff_after: must be at least 1".to_owned());
    }
    if l.max_failures == 0 || l.max_failures > MAX_LOGIN_FAILURES {
        problems.push(format!(
            "login.max_failures: must be between 1 and {MAX_LOGIN_FAILURES}"
        ));
    }
    if l.max_failures < l.backoff_after {
        problems.push("login.max_failures: must not be below login.backoff_after".to_owned());
    }
    for (key, v) in [
        ("login.backoff_base_seconds", l.backoff_base_seconds),
        ("login.max_wait_seconds", l.max_wait_seconds),
        ("login.failure_reset_seconds", l.failure_reset_seconds),
        ("login.inflight_lease_ms", l.inflight_lease_ms),
        ("login.ip.window_seconds", l.ip.window_seconds),
        ("login.ip.ban_seconds", l.ip.ban_seconds),
    ] {
        if v == 0 {
            problems.push(format!("{key}: must be greater than 0"));
        }
    }
    if l.max_wait_seconds < l.backoff_base_seconds {
        problems.push(
            "login.max_wait_seconds: must not be below login.backoff_base_seconds".to_owned(),
        );
    }
    if l.ip.max_failures == 0
        || l.ip.rate_per_minute == 0
        || l.global.attack_threshold_per_minute == 0
    {
        problems.push("login.ip.max_failures, login.ip.rate_per_minute and login.global.attack_threshold_per_minute: must be at least 1".to_owned());
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let ms = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    Ok(crate::throttle::ThrottlePolicy {
        backoff_after: l.backoff_after,
        backoff_base_ms: ms(l.backoff_base_seconds),
        max_wait_ms: ms(l.max_wait_seconds),
        max_failures: l.max_failures,
        permanent_lock: l.permanent_lock,
        failure_reset_ms: ms(l.failure_reset_seconds),
        inflight_lease_ms: i64::try_from(l.inflight_lease_ms).unwrap_or(i64::MAX),
        ip_max_failures: l.ip.max_failures,
        ip_window_ms: ms(l.ip.window_seconds),
        ip_ban_ms: ms(l.ip.ban_seconds),
        ip_rate_per_minute: l.ip.rate_per_minute,
        attack_threshold_per_minute: l.global.attack_threshold_per_minute,
    })
}

fn parse_addr(key: &str, v: &str) -> Result<SocketAddr, String> {
    v.parse()
        .map_err(|_| format!("{key}: `{v}` is not an address like 127.0.0.1:8080"))
}

fn parse_method(m: &str) -> Result<Method, String> {
    let upper = m.to_ascii_uppercase();
    match upper.as_str() {
        "TRACE" | "CONNECT" => Err(format!("`{m}` is never allowed (R-HTTP-6)")),
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => {
            Method::from_bytes(upper.as_bytes()).map_err(|_| format!("`{m}` is not a method"))
        }
        _ => Err(format!(
            "`{m}` is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
        )),
    }
}

fn valid_peer(peer: &str) -> bool {
    let Some((host, port)) = peer.rsplit_once(':') else {
        return false;
    };
    !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
}

fn valid_prefix(prefix: &str) -> bool {
    prefix == "/"
        || (prefix.starts_with('/')
            && !prefix.ends_with('/')
            && !prefix.contains("//")
            && prefix
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#'))
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
        assert!(c.routes.iter().any(|r| r.auth == AuthMode::Required));
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
