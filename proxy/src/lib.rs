//! edge-proxy: a security edge proxy on pingora.
//!
//! It sits in front of any HTTP service and owns what the service should not: default-deny routing,
//! body limits, login and JWT sessions with instant revocation, identity headers the upstream can
//! verify, and metrics. It knows nothing about the upstream's domain; everything comes from `Config`.
//!
//! # Request pipeline
//!
//! This is the one phase table (ARCHITECTURE.md links here). `http::conn::EdgeApp` accepts each
//! connection; `Gateway` (`gateway.rs`) is the only `ProxyHttp` implementation, and each of its phase
//! methods is a short list of calls into stages. Stages under `policy/`, `tokens/`, `login/` and
//! `http::body::BodyMeter` never see pingora's `Session` (the `layering` test keeps the pure modules
//! free of pingora); every answer the proxy writes itself goes through `http::respond`.
//!
//! | phase | stages, in order | refusal |
//! |---|---|---|
//! | accept (`http::conn`) | per-IP connection count; head deadline from accept (later heads: from their first byte); an answer pingora's parser writes before any filter (malformed head, `CONNECT`) is replaced by ours (`conn::canned`) | 429 / 408 / 400 / 405 |
//! | `early_request_filter` | request id (the client's only if it is a UUID), trace context; head complete (stops the deadline; chunked bodies start `conn::chunked`); keep-alive idle and body read timeouts | — |
//! | `request_filter` (`gateway::admission`) | raw head bytes and head checks (`http::framing`) → client address (`policy::client`, XFF only from `trusted_proxies`) → inbound stripping (`policy::inbound` plan, `http::headers::strip_inbound`) → `TRACE`/`CONNECT` → path check (`policy::routing::check_path`) → own endpoints (`gateway::endpoints`: JWKS when EdDSA; login → `login::flow::LoginFlow::run`; logout / logout-all → `tokens::authn` + `login::logout`) → route match (`RouteTable`) → CORS (`policy::cors::decide_request`; preflights answered here) → route methods → API version (`policy::versioning`: header, `Accept` parameter, default; conflicting / unknown / retired / browned-out refused) → declared body (`http::body::check_declared`) → `tokens::authn::Authenticator` (own or external by `iss`; allowlist or denylist) → edge cache (`gateway::caching`: a read's key with the scope's generation, or a write's invalidation) → WebSocket handshake on a `websocket` route (`gateway::websocket`: meters, idle timeout) | 400 / 401 / 403 / 404 / 405 / 408 / 410 / 413 / 414 / 429 / 431 / 503 |
//! | cache phases (pingora-cache) | on a keyed read: lookup in `http::cache_storage`, the cache lock (one upstream request per key), stale-while-revalidate, revalidation with the stored `ETag`; `response_cache_filter` stores only what `policy::caching::unstorable` allows | — |
//! | `request_body_filter` | upgraded (WebSocket) bytes: `policy::websocket::FrameMeter` instead (`gateway::websocket`); chunk-line violation from the stream; `BodyMeter::feed` (route limit, minimum rate); the meter keeps its `ProxyError` and the error aborts the upstream request | 400 / 408 / 413 |
//! | `upstream_peer` | the route's pool, or the resolved API version's own (`Arc<Route<Target>>` in the context: pools and metric handles resolved at build time): `http::upstream::Pool::select`, the next healthy peer (any peer in panic mode; another one on a retry), connect/read timeouts | 502 |
//! | `connected_to_upstream` / `fail_to_connect` | passive health: a new connection marks the peer up, a refused one down; an idempotent request is retried once on another peer | — |
//! | `upstream_request_filter` | `tokens::assertion::Asserter::identity` for a caller, then `http::headers::forward`: no `Authorization`; `X-Request-Id`, `X-Forwarded-*`, `traceparent`, `X-User-*`, `X-Identity-Assertion`, exactly one API version header | — |
//! | `response_filter` | on a cached route `Cache-Status` and the result metric, and a write's 2xx renews its scopes' generations; `http::headers::rewrite_response`: no `Server`; security headers; `Api-Version` (and `Deprecation`, `Sunset`, `Link`, built at load); the policy's CORS headers instead of the upstream's, `Vary: Origin`; `X-Request-Id` | — |
//! | `response_body_filter` | upgraded (WebSocket) bytes to the client through their `FrameMeter` | — |
//! | `fail_to_proxy` | the meter's refusal, else `ProxyError::from_pingora` (`http::pingora_error`); written by `http::respond` | 400 / 408 / 413 / 502 / 504 |
//! | `logging` | request done on the stream; metrics; one access-log line (`obs::access_log`, `AuthOutcome` label) | — |
//!
//! Every refusal in the request filter goes through `Gateway::reject`, which writes what
//! `ProxyError::response` describes. Time comes from an injected [`clock::Clock`].
//!
//! `main.rs` is a shell: tests and the binary run the same [`build`] and [`EdgeProxy::run`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};

pub mod admin;
pub mod clock;
pub mod config;
pub(crate) mod error;
pub(crate) mod gateway;
pub mod generations;
pub(crate) mod http;
pub(crate) mod login;
pub(crate) mod obs;
pub(crate) mod policy;
pub mod raw;
pub mod session;
pub mod store;
pub mod throttle;
pub mod tokens;

pub use config::Config;

use crate::clock::SharedClock;
use crate::config::StoreBackend;
use crate::gateway::Gateway;
use crate::session::{MemorySessionStore, RedisSessionStore, SessionStore};
use crate::throttle::{AttemptStore, MemoryAttemptStore, RedisAttemptStore};

/// A built proxy: the admin listener is bound; the public listener binds when [`EdgeProxy::run`] starts.
pub struct EdgeProxy {
    server: Server,
    listen: SocketAddr,
    admin: SocketAddr,
}

impl EdgeProxy {
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// Runs until the shutdown signal in `args` fires (SIGTERM/SIGINT for the binary).
    pub fn run(self, args: RunArgs) {
        self.server.run(args);
    }
}

/// The stores a proxy uses; replicas share them through Redis.
pub struct Stores {
    pub sessions: Arc<dyn SessionStore>,
    pub attempts: Arc<dyn AttemptStore>,
    /// The edge cache's generations (shared by replicas on Redis).
    pub generations: Arc<dyn generations::GenerationStore>,
    /// The Redis connection and key prefix the stores above use, where the edge cache keeps its
    /// entries too; `None` on the memory store (entries stay in process).
    pub redis: Option<(Arc<store::RedisConnector>, String)>,
}

impl Stores {
    /// The stores the config asks for. On Redis, every store shares one connector (a multiplexed
    /// connection per thread): `/readyz` pings all of its connections, so when it answers 200 the
    /// connection every request uses is up (they recover at different moments after an outage).
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        Ok(match &config.store.backend {
            StoreBackend::Memory => Self {
                sessions: Arc::new(MemorySessionStore::new()),
                attempts: Arc::new(MemoryAttemptStore::new(config.login.clone())),
                generations: Arc::new(generations::MemoryGenerations::new()),
                redis: None,
            },
            StoreBackend::Redis { url } => {
                let redis = store::RedisConnector::new(url, config.store.timeout)
                    .context("configuring the Redis store")?;
                Self::on_redis(Arc::new(redis), &config.store.key_prefix, &config.login)
            }
        })
    }

    /// Every store on one Redis connection, under `prefix`.
    pub fn on_redis(
        redis: Arc<store::RedisConnector>,
        prefix: &str,
        policy: &throttle::ThrottlePolicy,
    ) -> Self {
        Self {
            sessions: Arc::new(RedisSessionStore::with_connector(
                Arc::clone(&redis),
                prefix,
            )),
            attempts: Arc::new(RedisAttemptStore::with_connector(
                Arc::clone(&redis),
                prefix,
                policy.clone(),
            )),
            generations: Arc::new(generations::RedisGenerations::with_connector(
                Arc::clone(&redis),
                prefix,
            )),
            redis: Some((redis, prefix.to_owned())),
        }
    }
}

/// Builds the proxy from a validated config.
pub fn build(config: Config) -> anyhow::Result<EdgeProxy> {
    let stores = Stores::from_config(&config)?;
    build_with_stores(config, stores)
}

/// Like [`build`] with stores the caller made (tests share them between proxies).
pub fn build_with_stores(config: Config, stores: Stores) -> anyhow::Result<EdgeProxy> {
    build_with(config, stores, clock::system())
}

/// Like [`build_with_stores`] on `clock` (tests move time instead of sleeping).
pub fn build_with(config: Config, stores: Stores, clock: SharedClock) -> anyhow::Result<EdgeProxy> {
    let mut server = pingora_server(&config);
    let metrics = Arc::new(obs::metrics::Metrics::new().context("registering metrics")?);
    let mut pools = BTreeMap::new();
    for u in &config.upstreams {
        let (pool, health) = http::upstream::Pool::from_config(u)?;
        server.add_service(health);
        pools.insert(u.name.clone(), Arc::new(pool));
    }
    let parts = Parts {
        stores,
        metrics,
        pools,
        clock,
    };
    let gateway = gateway(&config, &parts)?;
    let mut proxy_app = pingora::proxy::http_proxy(&server.configuration, gateway);
    let mut options = pingora::apps::HttpServerOptions::default();
    options.keepalive_request_limit = config.server.keepalive_requests;
    proxy_app.server_options = Some(options);
    let app = http::conn::EdgeApp::new(
        proxy_app,
        config.connections.clone(),
        &parts.metrics.connections_open,
        &parts.metrics.connections_refused,
        &parts.metrics.framing_rejections,
        &config.security_headers,
    );
    let mut proxy = pingora::services::listening::Service::new("edge-proxy".into(), app);
    proxy.add_tcp(&config.listen.to_string());
    server.add_service(proxy);
    let (admin, admin_addr) = admin_service(&config, parts)?;
    server.add_service(admin);
    Ok(EdgeProxy {
        server,
        listen: config.listen,
        admin: admin_addr,
    })
}

/// What the gateway and the admin API share.
struct Parts {
    stores: Stores,
    metrics: Arc<obs::metrics::Metrics>,
    pools: BTreeMap<String, Arc<http::upstream::Pool>>,
    clock: SharedClock,
}

impl Parts {
    fn pool(&self, name: &str) -> anyhow::Result<Arc<http::upstream::Pool>> {
        self.pools
            .get(name)
            .cloned()
            .with_context(|| format!("no upstream pool named `{name}`"))
    }

    /// Upstream `name` as requests use it: pool and metric handles.
    fn dest(&self, name: &str) -> anyhow::Result<http::upstream::Dest> {
        Ok(http::upstream::Dest {
            name: name.to_owned(),
            pool: self.pool(name)?,
            metrics: self.metrics.for_upstream(name),
        })
    }
}

fn pingora_server(config: &Config) -> Server {
    let mut conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.server.graceful_shutdown_timeout.as_secs()),
        upstream_keepalive_pool_size: config.server.upstream_keepalive_pool_size,
        ..ServerConf::default()
    };
    conf.daemon = false;
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    server
}

/// The token side: own tokens, external issuers, the authenticator.
fn authenticator(
    config: &Config,
    parts: &Parts,
) -> anyhow::Result<Arc<tokens::authn::Authenticator>> {
    let external = config
        .issuers
        .iter()
        .map(|issuer| {
            let fetches = parts.metrics.jwks_fetches.clone();
            tokens::issuer::Issuer::new(issuer.clone(), fetches, Arc::clone(&parts.clock))
                .map(Arc::new)
                .with_context(|| format!("preparing issuer `{}`", issuer.name))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let own = Arc::new(tokens::own::TokenService::from_config(&config.jwt));
    let leeway = std::time::Duration::from_secs(config.jwt.leeway_secs.unsigned_abs());
    let verifier = Arc::new(tokens::Verifier::new(own, external, leeway));
    Ok(Arc::new(tokens::authn::Authenticator::new(
        verifier,
        Arc::clone(&parts.stores.sessions),
        Arc::clone(&parts.metrics),
    )))
}

/// Every route bound to its pools and metric handles.
fn bound_routes(
    config: &Config,
    parts: &Parts,
) -> anyhow::Result<Vec<policy::routing::Route<http::upstream::Target>>> {
    config
        .routes
        .iter()
        .map(|r| {
            let (versions, api_requests) = match &r.versioning {
                None => (Vec::new(), Vec::new()),
                Some(v) => (
                    v.versions
                        .iter()
                        .map(|e| e.upstream.as_deref().map(|u| parts.dest(u)).transpose())
                        .collect::<anyhow::Result<_>>()?,
                    parts.metrics.for_versions(&r.name, &v.labels()),
                ),
            };
            let stores = r
                .cache
                .as_ref()
                .is_some_and(policy::caching::RouteCache::stores);
            Ok(r.clone().bind(http::upstream::Target {
                dest: parts.dest(&r.upstream)?,
                requests: parts.metrics.for_handler(&r.name),
                versions,
                api_requests,
                cache_results: if stores {
                    parts.metrics.for_cache(&r.name)
                } else {
                    Vec::new()
                },
            }))
        })
        .collect()
}

/// The edge cache's shared parts, when any route has `[routes.cache]`.
fn edge_cache(
    config: &Config,
    stores: &Stores,
    metrics: &obs::metrics::Metrics,
) -> Option<gateway::caching::EdgeCache> {
    config
        .routes
        .iter()
        .any(|r| r.cache.is_some())
        .then(|| gateway::caching::EdgeCache {
            storage: gateway::caching::storage(&config.cache, stores.redis.as_ref(), metrics),
            lock: gateway::caching::lock(config.cache.lock_timeout),
            generations: Arc::clone(&stores.generations),
            max_object: config.cache.max_object_bytes,
        })
}

fn gateway(config: &Config, parts: &Parts) -> anyhow::Result<Gateway> {
    let routes = bound_routes(config, parts)?;
    let authn = authenticator(config, parts)?;
    let own = Arc::clone(&authn.tokens.own);
    let asserter = Arc::new(tokens::assertion::Asserter::from_config(&config.identity));
    let credentials = login::credentials::CredentialClient::new(
        &config.sessions.verify_path,
        config.sessions.verify_timeout,
    )
    .context("building the credential-check client")?;
    let Stores {
        sessions, attempts, ..
    } = &parts.stores;
    let cache = edge_cache(config, &parts.stores, &parts.metrics);
    Ok(Gateway {
        routes: policy::routing::RouteTable::new(routes),
        endpoint_metrics: gateway::EndpointMetrics::new(&parts.metrics),
        login: login::flow::LoginFlow {
            own: Arc::clone(&own),
            sessions: Arc::clone(sessions),
            attempts: Arc::clone(attempts),
            check_permits: tokio::sync::Semaphore::new(config.max_concurrent_checks),
            asserter: Arc::clone(&asserter),
            credentials,
            peers: parts
                .pool(&config.sessions.upstream)
                .context("the sessions upstream")?,
            metrics: Arc::clone(&parts.metrics),
        },
        logout: login::logout::Logout {
            own_lifetime_secs: own.lifetime_secs(),
            sessions: Arc::clone(sessions),
            metrics: Arc::clone(&parts.metrics),
        },
        authn,
        asserter,
        paths: config.sessions.clone(),
        realm: config.jwt.realm.clone(),
        trusted_proxies: config.trusted_proxies.clone(),
        metrics: Arc::clone(&parts.metrics),
        keepalive_idle: config.server.keepalive_idle,
        access_log: obs::access_log::AccessLog::new(
            config.access_log,
            config.log_format == config::LogFormat::Json,
        ),
        request_metrics: config.request_metrics,
        body_timeouts: config.body_timeouts,
        websocket: config.websocket,
        security_headers: Arc::new(config.security_headers.clone()),
        clock: Arc::clone(&parts.clock),
        cache,
    })
}

/// The admin listener, bound now (so port 0 works and a bind error is a start-up error).
fn admin_service(
    config: &Config,
    parts: Parts,
) -> anyhow::Result<(
    pingora::services::background::GenBackgroundService<admin::AdminService>,
    SocketAddr,
)> {
    let listener = std::net::TcpListener::bind(config.admin.listen)
        .with_context(|| format!("binding the admin listener on {}", config.admin.listen))?;
    let addr = listener.local_addr().context("reading the admin address")?;
    let Parts {
        stores,
        metrics,
        pools,
        clock,
    } = parts;
    let state = admin::AdminState {
        sessions: stores.sessions,
        attempts: stores.attempts,
        pools: Arc::new(pools.into_values().collect()),
        metrics,
        token_digest: admin::AdminState::token_digest(&config.admin.token),
        max_token_lifetime: config.jwt.lifetime_secs + config.jwt.leeway_secs,
        issuers: Arc::new(
            config
                .issuers
                .iter()
                .map(|i| (i.name.clone(), i.max_lifetime + 60))
                .collect(),
        ),
        public_listener: Arc::new(admin::PublicListener::new(config.listen)),
        clock,
    };
    let service = pingora::services::background::background_service(
        "admin",
        admin::AdminService::new(listener, state),
    );
    Ok((service, addr))
}

pub use obs::log_cap::Bridge as LogBridge;
pub use settings::{init_tracing, init_tracing_with};
