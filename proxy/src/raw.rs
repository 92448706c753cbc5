//! `RawConfig`: the serde mirror of `config/<profile>/proxy.toml`. Primitive fields and defaults only;
//! `config.rs` turns it into the validated `Config`. Unknown keys are errors.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Peers (IPs or CIDRs) whose `X-Forwarded-For` is believed. Default: none.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub store: RawStore,
    pub jwt: RawJwt,
    pub identity: RawIdentity,
    #[serde(default)]
    pub sessions: RawSessions,
    #[serde(default)]
    pub login: RawLogin,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    /// Named CORS policies; a route uses one with `cors = "<name>"`.
    #[serde(default)]
    pub cors: BTreeMap<String, RawCors>,
    /// Named API versioning schemes; a route opts in with `versioning = "<name>"`.
    #[serde(default)]
    pub versioning: BTreeMap<String, RawVersioning>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub cache: RawCache,
    /// External token issuers; their tokens are accepted alongside the proxy's own.
    #[serde(default)]
    pub issuers: Vec<RawIssuer>,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub security_headers: RawSecurityHeaders,
}

/// Headers added to every answer, proxied or generated, unless the upstream set them already. An empty
/// string turns one off.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSecurityHeaders {
    pub content_type_options: String,
    pub referrer_policy: String,
    pub frame_options: String,
    /// Set only when clients reach the proxy over TLS (terminated here or just in front).
    pub strict_transport_security: String,
}

impl Default for RawSecurityHeaders {
    fn default() -> Self {
        Self {
            content_type_options: "nosniff".into(),
            referrer_policy: "no-referrer".into(),
            frame_options: "DENY".into(),
            strict_transport_security: String::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMetrics {
    /// Per-request metrics (requests, durations) in the logging phase; `false` only to measure their cost.
    pub enabled: bool,
}

impl Default for RawMetrics {
    fn default() -> Self {
        Self { enabled: true }
    }
}

fn default_listen() -> String {
    "0.0.0.0:8080".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub threads: usize,
    /// Seconds between SIGTERM and closing listeners (pingora's own default is 300 s).
    pub grace_period_seconds: u64,
    /// Seconds in-flight requests get to finish after the grace period.
    pub graceful_shutdown_timeout_seconds: u64,
    pub upstream_keepalive_pool_size: usize,
    /// Idle time a client keep-alive connection is kept open.
    pub keepalive_idle_seconds: u64,
    /// Requests one client connection may carry before the proxy closes it (nginx's
    /// `keepalive_requests`, 1000): per-connection memory is freed now and then. 0: no limit.
    pub keepalive_requests: u32,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            threads: 2,
            grace_period_seconds: 5,
            graceful_shutdown_timeout_seconds: 10,
            upstream_keepalive_pool_size: 128,
            keepalive_idle_seconds: 15,
            keepalive_requests: 1000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAdmin {
    pub listen: String,
    pub token: Option<String>,
    pub token_file: Option<String>,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9901".into(),
            token: None,
            token_file: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    /// `memory` (one process only) or `redis` (shared by all replicas).
    pub backend: String,
    pub redis_url: Option<String>,
    pub redis_url_file: Option<String>,
    pub key_prefix: String,
    /// A store operation slower than this counts as the store being unavailable.
    pub timeout_ms: u64,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            backend: "memory".into(),
            redis_url: None,
            redis_url_file: None,
            key_prefix: "edge-proxy:".into(),
            timeout_ms: 250,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwt {
    #[serde(default = "default_alg")]
    pub algorithm: String,
    pub key: Option<String>,
    pub key_file: Option<String>,
    pub key_id: Option<String>,
    #[serde(default = "default_issuer")]
    pub issuer: String,
    #[serde(default = "default_issuer")]
    pub audience: String,
    #[serde(default = "default_lifetime")]
    pub lifetime_seconds: u64,
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    #[serde(default = "default_issuer")]
    pub realm: String,
    /// The key being rotated out: it still verifies (never signs) until `verify_until`.
    pub previous: Option<RawPreviousKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPreviousKey {
    pub key: Option<String>,
    pub key_file: Option<String>,
    pub key_id: Option<String>,
    /// RFC 3339 time after which tokens signed with this key are refused.
    pub verify_until: String,
}

/// An external token issuer (R-JWT-9).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIssuer {
    /// Short label-safe name: metrics, store keys, admin paths and the `X-User-Id` namespace.
    pub name: String,
    /// Exact `iss` claim.
    pub iss: String,
    /// A JWKS file path, or an `https://` URL.
    pub jwks: String,
    /// PEM file of extra CA certificates trusted for the JWKS URL (a private CA).
    pub jwks_ca_file: Option<String>,
    pub audiences: Vec<String>,
    #[serde(default = "default_issuer_algorithms")]
    pub algorithms: Vec<String>,
    /// RFC 9068 profile (`typ` `at+jwt`). Off for issuers whose tokens are plain `JWT`s.
    #[serde(default = "default_true")]
    pub rfc9068: bool,
    /// Longest `exp - iat` accepted; also how long a denylist entry is kept.
    #[serde(default = "default_external_lifetime")]
    pub max_lifetime_seconds: u64,
}

fn default_issuer_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into(), "EdDSA".into()]
}
fn default_true() -> bool {
    true
}
fn default_external_lifetime() -> u64 {
    3600
}

fn default_alg() -> String {
    "HS256".into()
}
fn default_issuer() -> String {
    "edge-proxy".into()
}
fn default_lifetime() -> u64 {
    900
}
fn default_leeway() -> u64 {
    30
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    /// `HS256` (a shared secret) or `EdDSA` (the secret is a PKCS#8 PEM private key, and the upstream
    /// verifies with the public half; SECURITY.md R-ID-5).
    #[serde(default = "default_alg")]
    pub algorithm: String,
    pub secret: Option<String>,
    pub secret_file: Option<String>,
    #[serde(default = "default_issuer")]
    pub issuer: String,
    #[serde(default = "default_assertion_lifetime")]
    pub lifetime_seconds: u64,
}

fn default_assertion_lifetime() -> u64 {
    60
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSessions {
    pub login_path: String,
    pub logout_path: String,
    pub logout_all_path: String,
    /// The upstream pool whose credential check login calls.
    pub upstream: String,
    pub verify_path: String,
    pub max_body_bytes: u64,
    pub verify_timeout_ms: u64,
}

impl Default for RawSessions {
    fn default() -> Self {
        Self {
            login_path: "/auth/login".into(),
            logout_path: "/auth/logout".into(),
            logout_all_path: "/auth/logout-all".into(),
            upstream: "todo".into(),
            verify_path: "/internal/credentials/verify".into(),
            max_body_bytes: 4096,
            verify_timeout_ms: 5_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    pub max_body_bytes: u64,
    /// Longest wait for the next body bytes (R-HTTP: 10 s).
    pub body_idle_timeout_ms: u64,
    /// After `body_min_rate_grace_ms`, a body arriving slower than this is cut with 408 (R-HTTP:
    /// 1000 B/s after the first 20 s, Apache `RequestReadTimeout body=20,MinRate=1000`).
    pub body_min_rate_bytes_per_sec: u64,
    pub body_min_rate_grace_ms: u64,
    /// Total time for a request head to arrive (R-HTTP: 10 s, then 408 and close).
    pub header_timeout_ms: u64,
    /// Open connections per client IP (TCP peer; `trusted_proxies` are exempt). 0 = no limit.
    pub max_connections_per_ip: usize,
    /// A WebSocket connection that carries nothing in one direction this long is closed.
    pub websocket_idle_timeout_ms: u64,
    /// The largest WebSocket frame payload, in either direction; a bigger frame closes the
    /// connection.
    pub websocket_max_frame_bytes: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 10 * 1024 * 1024,
            body_idle_timeout_ms: 10_000,
            body_min_rate_bytes_per_sec: 1_000,
            body_min_rate_grace_ms: 20_000,
            header_timeout_ms: 10_000,
            max_connections_per_ip: 100,
            websocket_idle_timeout_ms: 60_000,
            websocket_max_frame_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub peers: Vec<String>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_read_timeout")]
    pub read_timeout_ms: u64,
    #[serde(default = "default_health_interval")]
    pub health_check_interval_ms: u64,
    #[serde(default = "default_panic_threshold")]
    pub panic_threshold: f64,
    /// How long an idle pooled connection to a peer is kept (nginx's upstream `keepalive_timeout`).
    #[serde(default = "default_upstream_idle")]
    pub idle_timeout_ms: u64,
}

fn default_connect_timeout() -> u64 {
    2_000
}
fn default_read_timeout() -> u64 {
    30_000
}
fn default_health_interval() -> u64 {
    5_000
}
fn default_panic_threshold() -> f64 {
    0.5
}
fn default_upstream_idle() -> u64 {
    60_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: String,
    pub prefix: String,
    /// Match `prefix` itself only, not the paths below it; an exact route wins over a prefix route
    /// with the same prefix (so `/todos` and `/todos/{id}` can allow different methods).
    #[serde(default)]
    pub exact: bool,
    pub upstream: String,
    #[serde(default = "default_auth")]
    pub auth: String,
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    pub max_body_bytes: Option<u64>,
    /// Name of a `[cors.<name>]` policy; absent: no CORS headers at all.
    pub cors: Option<String>,
    /// Name of a `[versioning.<name>]` scheme; absent: the proxy leaves versions to the upstream.
    pub versioning: Option<String>,
    /// The edge cache for this route (DESIGN.md 7.2); absent: never cached.
    pub cache: Option<RawRouteCache>,
    /// Forward WebSocket handshakes (and nothing else that upgrades) to the upstream.
    #[serde(default)]
    pub websocket: bool,
}

/// `[routes.cache]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteCache {
    /// `per_user` (an entry per verified subject) or `shared`.
    #[serde(default = "default_cache_mode")]
    pub mode: String,
    /// How long a stored answer is fresh. Absent: answers are not stored, but this route's writes
    /// still invalidate the routes in `invalidates`. 0: stored, revalidated on every use.
    pub ttl_seconds: Option<u64>,
    /// How long past the TTL a stale answer is served while one request revalidates it.
    #[serde(default)]
    pub stale_while_revalidate_seconds: u64,
    /// Other cached routes whose entries (the caller's, in `per_user` mode) a 2xx answer to an
    /// unsafe request on this route invalidates, besides this route's own.
    #[serde(default)]
    pub invalidates: Vec<String>,
}

fn default_cache_mode() -> String {
    "per_user".into()
}

/// `[cache]`: the edge cache's storage, shared by every cached route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCache {
    /// In-process storage: the most bytes of answers kept (least recently used go first).
    pub max_memory_bytes: u64,
    /// Answers larger than this are not stored.
    pub max_object_bytes: u64,
    /// How long concurrent misses on one key wait for the one request that fetches it.
    pub lock_timeout_ms: u64,
}

impl Default for RawCache {
    fn default() -> Self {
        Self {
            max_memory_bytes: 64 * 1024 * 1024,
            max_object_bytes: 1024 * 1024,
            lock_timeout_ms: 5_000,
        }
    }
}

/// An API versioning scheme (DESIGN.md 7.3, docs/versioning.md): date versions (`YYYY-MM-DD`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVersioning {
    /// The request header read first, and the header the upstream and the client get.
    #[serde(default = "default_version_header")]
    pub header: String,
    /// The version of requests that name none.
    pub default: String,
    /// Every version served (deprecated ones included).
    pub supported: Vec<String>,
    /// Deprecated versions (each also in `supported`) and their lifecycle.
    #[serde(default)]
    pub deprecated: BTreeMap<String, RawDeprecation>,
    /// Versions past their sunset: answered 410 at the edge.
    #[serde(default)]
    pub retired: Vec<String>,
    /// Versions served by another upstream pool than the route's (version → pool name).
    #[serde(default)]
    pub upstreams: BTreeMap<String, String>,
}

fn default_version_header() -> String {
    "api-version".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeprecation {
    /// RFC 3339 time the version was (or will be) deprecated: `Deprecation: @<unix seconds>`.
    pub deprecation: String,
    /// RFC 3339 time after which it may stop working: `Sunset: <HTTP-date>`; not before `deprecation`.
    pub sunset: Option<String>,
    /// The migration guide: `Link: <url>; rel="deprecation"`, and the 410's `link`.
    pub link: Option<String>,
    /// Windows during which the version answers 410, to make clients that ignore headers notice.
    #[serde(default)]
    pub brownouts: Vec<RawBrownout>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBrownout {
    /// RFC 3339.
    pub start: String,
    /// RFC 3339, after `start`.
    pub end: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    /// Exact origins (`https://app.example.com`) or `https://*.example.com`.
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub allow_credentials: bool,
    #[serde(default = "default_cors_headers")]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default = "default_cors_max_age")]
    pub max_age_seconds: u32,
}

/// `Access-Control-Allow-Headers` when a policy lists none.
pub fn default_cors_headers() -> Vec<String> {
    vec!["authorization".to_owned(), "content-type".to_owned()]
}

/// Default `Access-Control-Max-Age` (R-CORS-3).
pub const DEFAULT_CORS_MAX_AGE_SECS: u32 = 600;

fn default_cors_max_age() -> u32 {
    DEFAULT_CORS_MAX_AGE_SECS
}

fn default_auth() -> String {
    "required".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    pub format: String,
    pub filter: String,
    /// One access-log line per request.
    pub access: bool,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: "pretty".into(),
            filter: "info".into(),
            access: true,
        }
    }
}

/// Login throttling (SECURITY.md R-LOGIN); defaults are the table there.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLogin {
    pub backoff_after: u32,
    pub backoff_base_seconds: u64,
    pub max_wait_seconds: u64,
    pub max_failures: u32,
    /// `true`: the N-th failure locks until an admin unlocks; `false`: it blocks for `max_wait`.
    pub permanent_lock: bool,
    pub failure_reset_seconds: u64,
    pub inflight_lease_ms: u64,
    /// Credential checks one proxy runs at once; beyond it, logins get 429 before anything is counted.
    pub max_concurrent_checks: usize,
    pub ip: RawLoginIp,
    pub global: RawLoginGlobal,
}

impl Default for RawLogin {
    fn default() -> Self {
        Self {
            backoff_after: 3,
            backoff_base_seconds: 60,
            max_wait_seconds: 3_600,
            max_failures: 10,
            permanent_lock: true,
            failure_reset_seconds: 12 * 3_600,
            inflight_lease_ms: 5_000,
            max_concurrent_checks: 16,
            ip: RawLoginIp::default(),
            global: RawLoginGlobal::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLoginIp {
    pub max_failures: u32,
    pub window_seconds: u64,
    pub ban_seconds: u64,
    pub rate_per_minute: u32,
}

impl Default for RawLoginIp {
    fn default() -> Self {
        Self {
            max_failures: 20,
            window_seconds: 600,
            ban_seconds: 900,
            rate_per_minute: 30,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLoginGlobal {
    pub attack_threshold_per_minute: u32,
}

impl Default for RawLoginGlobal {
    fn default() -> Self {
        Self {
            attack_threshold_per_minute: 300,
        }
    }
}
