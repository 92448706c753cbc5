//! Prometheus metrics of the proxy, served only on the admin listener (R-OBS-1).
//! One registry per `Gateway`, not a global, so several proxies in one test process stay separate.
//! Labels are bounded: route and upstream names from config, methods from a fixed list, status classes,
//! fixed reason sets; never ids, emails, IPs or raw paths (R-OBS-2).
//!
//! The `prometheus` crate (tikv) does the exposition; its registry is per instance and its types are
//! cheap to clone, which is what a per-`Gateway` registry needs.

use prometheus::{HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};
use settings::metrics::{MetricSet, Spec};

use crate::error::ProxyError;
use crate::store::StoreError;

/// Buckets from 50 µs to 10 s: proxy-local work is sub-millisecond and must be told apart from
/// upstream latency (50 µs and 500 µs fall in different buckets).
pub(crate) const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

pub struct Metrics {
    set: MetricSet,
    /// `route`, `method`, `status` (class: 2xx … 5xx).
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub in_flight: IntGauge,
    /// Time from choosing a peer to the upstream's response header, by upstream.
    pub upstream_duration: HistogramVec,
    pub upstream_errors: IntCounterVec,
    pub upstream_healthy_peers: IntGaugeVec,
    /// `result`: ok, missing, invalid, expired, revoked.
    pub auth_decisions: IntCounterVec,
    /// `reason`: the failures of `auth_decisions` (DESIGN.md name).
    pub auth_failures: IntCounterVec,
    pub login_attempts: IntCounterVec,
    pub login_verifications: IntCounter,
    pub lockouts: IntCounter,
    pub ip_bans: IntCounter,
    pub body_limit_rejections: IntCounter,
    /// Refused preflights and unsafe requests from disallowed origins.
    pub cors_rejections: IntCounter,
    /// Malformed requests refused at the edge (`reason`: invalid_request, invalid_path).
    pub framing_rejections: IntCounterVec,
    pub store_duration: HistogramVec,
    pub store_errors: IntCounter,
    /// JWKS fetches of external issuers (`issuer`, `result`: ok, error).
    pub jwks_fetches: IntCounterVec,
    /// Connections closed by the connection limits (`reason`: per_ip_limit, header_timeout).
    pub connections_refused: IntCounterVec,
    /// Client connections open on the public listener.
    pub connections_open: IntGauge,
    /// Requests on versioned routes by route and resolved (or refused) API version.
    pub api_requests: IntCounterVec,
    /// Requests on cached routes by route and cache result.
    pub cache_requests: IntCounterVec,
    /// `auth_decisions` (and `auth_failures`) per known result, resolved once.
    auth_handles: Vec<(&'static str, IntCounter, Option<IntCounter>)>,
    /// `store_duration` per known operation, resolved once.
    store_ops: Vec<(&'static str, prometheus::Histogram)>,
}

/// The `result` values of the auth metrics (`tokens::authn::AuthOutcome` labels that are counted).
const AUTH_RESULTS: [&str; 5] = ["ok", "missing", "invalid", "expired", "revoked"];
/// The `op` values of `edge_proxy_store_duration_seconds`.
const STORE_OPS: [&str; 13] = [
    "session_status",
    "external_status",
    "session_insert",
    "session_revoke",
    "session_revoke_all",
    "external_revoke",
    "external_revoke_all",
    "login_begin",
    "login_finish",
    "cache_generation",
    "cache_invalidate",
    "cache_entry_read",
    "cache_entry_write",
];

const REQUESTS: Spec = Spec::new(
    "edge_proxy_requests_total",
    "Requests by route, method and status class",
    &["route", "method", "status"],
);
const REQUEST_DURATION: Spec = Spec::new(
    "edge_proxy_request_duration_seconds",
    "Time from request start to the end of the response, by route",
    &["route"],
);
const IN_FLIGHT: Spec = Spec::new(
    "edge_proxy_requests_in_flight",
    "Requests being handled",
    &[],
);
const UPSTREAM_DURATION: Spec = Spec::new(
    "edge_proxy_upstream_duration_seconds",
    "Time from choosing a peer to its response header, by upstream",
    &["upstream"],
);
const UPSTREAM_ERRORS: Spec = Spec::new(
    "edge_proxy_upstream_errors_total",
    "Failed upstream exchanges (connect, timeout, reset), by upstream",
    &["upstream"],
);
const UPSTREAM_HEALTHY_PEERS: Spec = Spec::new(
    "edge_proxy_upstream_healthy_peers",
    "Peers passing their health check, by upstream",
    &["upstream"],
);
const AUTH_DECISIONS: Spec = Spec::new(
    "edge_proxy_auth_decisions_total",
    "Token checks on protected routes by result",
    &["result"],
);
const AUTH_FAILURES: Spec = Spec::new(
    "edge_proxy_auth_failures_total",
    "Refused credentials by reason",
    &["reason"],
);
const LOGIN_ATTEMPTS: Spec = Spec::new(
    "edge_proxy_login_attempts_total",
    "Login attempts by result",
    &["result"],
);
const LOGIN_VERIFICATIONS: Spec = Spec::new(
    "edge_proxy_login_verifications_total",
    "Credential checks sent to the upstream",
    &[],
);
const LOCKOUTS: Spec = Spec::new(
    "edge_proxy_lockouts_total",
    "Accounts locked (or long-blocked) by consecutive login failures",
    &[],
);
const IP_BANS: Spec = Spec::new(
    "edge_proxy_ip_bans_total",
    "Client IPs banned for login failures",
    &[],
);
const BODY_LIMIT_REJECTIONS: Spec = Spec::new(
    "edge_proxy_body_limit_rejections_total",
    "Requests refused for exceeding their body limit",
    &[],
);
const CORS_REJECTIONS: Spec = Spec::new(
    "edge_proxy_cors_rejections_total",
    "Refused CORS preflights and unsafe cross-origin requests",
    &[],
);
const FRAMING_REJECTIONS: Spec = Spec::new(
    "edge_proxy_framing_rejections_total",
    "Malformed requests refused at the edge",
    &["reason"],
);
const STORE_DURATION: Spec = Spec::new(
    "edge_proxy_store_duration_seconds",
    "Session and throttle store operations by operation",
    &["op"],
);
const STORE_ERRORS: Spec = Spec::new(
    "edge_proxy_store_errors_total",
    "Store operations that failed or timed out",
    &[],
);
const JWKS_FETCHES: Spec = Spec::new(
    "edge_proxy_jwks_fetches_total",
    "JWKS fetches of external token issuers, by issuer and result",
    &["issuer", "result"],
);
const CONNECTIONS_OPEN: Spec = Spec::new(
    "edge_proxy_connections_open",
    "Client connections open on the public listener",
    &[],
);
const API_REQUESTS: Spec = Spec::new(
    "edge_proxy_api_requests_total",
    "Requests on versioned routes by route and API version (`invalid`: conflicting or unknown)",
    &["route", "api_version"],
);
const CACHE_REQUESTS: Spec = Spec::new(
    "edge_proxy_cache_requests_total",
    "Requests on cached routes by route and result (hit, miss, stale, bypass, uncacheable)",
    &["route", "result"],
);
const CONNECTIONS_REFUSED: Spec = Spec::new(
    "edge_proxy_connections_refused_total",
    "Connections closed by the per-IP limit or the request-head deadline, by reason",
    &["reason"],
);

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let m = MetricSet::new(LATENCY_BUCKETS);
        Ok(Self {
            requests: m.counter_vec(&REQUESTS)?,
            request_duration: m.histogram_vec(&REQUEST_DURATION)?,
            in_flight: m.gauge(&IN_FLIGHT)?,
            upstream_duration: m.histogram_vec(&UPSTREAM_DURATION)?,
            upstream_errors: m.counter_vec(&UPSTREAM_ERRORS)?,
            upstream_healthy_peers: m.gauge_vec(&UPSTREAM_HEALTHY_PEERS)?,
            auth_decisions: m.counter_vec(&AUTH_DECISIONS)?,
            auth_failures: m.counter_vec(&AUTH_FAILURES)?,
            login_attempts: m.counter_vec(&LOGIN_ATTEMPTS)?,
            login_verifications: m.counter(&LOGIN_VERIFICATIONS)?,
            lockouts: m.counter(&LOCKOUTS)?,
            ip_bans: m.counter(&IP_BANS)?,
            body_limit_rejections: m.counter(&BODY_LIMIT_REJECTIONS)?,
            cors_rejections: m.counter(&CORS_REJECTIONS)?,
            framing_rejections: m.counter_vec(&FRAMING_REJECTIONS)?,
            store_duration: m.histogram_vec(&STORE_DURATION)?,
            store_errors: m.counter(&STORE_ERRORS)?,
            jwks_fetches: m.counter_vec(&JWKS_FETCHES)?,
            connections_refused: m.counter_vec(&CONNECTIONS_REFUSED)?,
            connections_open: m.gauge(&CONNECTIONS_OPEN)?,
            api_requests: m.counter_vec(&API_REQUESTS)?,
            cache_requests: m.counter_vec(&CACHE_REQUESTS)?,
            auth_handles: Vec::new(),
            store_ops: Vec::new(),
            set: m,
        }
        .with_resolved_labels())
    }

    /// Resolves the label values every request uses, so the request path never hashes them.
    fn with_resolved_labels(mut self) -> Self {
        self.auth_handles = AUTH_RESULTS
            .iter()
            .map(|r| {
                let failure = (*r != "ok").then(|| self.auth_failures.with_label_values(&[r]));
                (*r, self.auth_decisions.with_label_values(&[r]), failure)
            })
            .collect();
        self.store_ops = STORE_OPS
            .iter()
            .map(|op| (*op, self.store_duration.with_label_values(&[op])))
            .collect();
        self
    }

    /// The latency histogram of store operation `op` (one of `STORE_OPS`), for stores that
    /// record their own calls (the edge cache's Redis storage).
    pub fn store_op(&self, op: &str) -> prometheus::Histogram {
        self.store_ops.iter().find(|(o, _)| *o == op).map_or_else(
            || self.store_duration.with_label_values(&[op]),
            |(_, h)| h.clone(),
        )
    }

    /// Counts an auth decision; failures also go to `edge_proxy_auth_failures_total`.
    pub fn auth(&self, result: &'static str) {
        self.auth_decisions.with_label_values(&[result]).inc();
        if result != "ok" {
            self.auth_failures.with_label_values(&[result]).inc();
        }
    }

    /// Runs one store operation, recording its latency; a failure is counted, logged and becomes a
    /// fail-closed 503.
    pub async fn store_call<T>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, ProxyError> {
        let started = std::time::Instant::now();
        let result = call.await;
        let seconds = started.elapsed().as_secs_f64();
        match self.store_ops.iter().find(|(o, _)| *o == op) {
            Some((_, h)) => h.observe(seconds),
            None => self
                .store_duration
                .with_label_values(&[op])
                .observe(seconds),
        }
        result.map_err(|error| {
            self.store_errors.inc();
            tracing::warn!(%error, op, "store unavailable; failing closed");
            ProxyError::Unavailable
        })
    }

    pub fn render(&self) -> String {
        self.set.render()
    }
}

/// The `method` label values: standard methods by name, anything else as `other`, so clients
/// cannot invent label values.
const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other",
];
/// The `status` label values; `0xx` when no response was written (the client went away).
const CLASSES: [&str; 6] = ["0xx", "1xx", "2xx", "3xx", "4xx", "5xx"];

fn method_index(m: &http::Method) -> usize {
    use http::Method;
    match *m {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::PATCH => 3,
        Method::DELETE => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// The bounded `method` label of `m`.
pub(crate) fn bounded_method(m: &http::Method) -> &'static str {
    METHODS[method_index(m)]
}

fn class_index(status: u16) -> usize {
    match status / 100 {
        n @ 1..=5 => usize::from(n),
        _ => 0,
    }
}

/// One handler's request metrics (a route, or one of the proxy's own endpoints), with every
/// label combination resolved when the proxy is built: the request path never hashes a label.
pub(crate) struct RequestMetrics {
    /// `edge_proxy_requests_total`, by method × status class.
    requests: Vec<IntCounter>,
    duration: prometheus::Histogram,
}

impl RequestMetrics {
    pub(crate) fn record(&self, method: &http::Method, status: u16, seconds: f64) {
        let i = method_index(method) * CLASSES.len() + class_index(status);
        if let Some(c) = self.requests.get(i) {
            c.inc();
        }
        self.duration.observe(seconds);
    }
}

/// A route's upstream metrics, resolved at build time.
pub(crate) struct UpstreamMetrics {
    pub duration: prometheus::Histogram,
    pub errors: IntCounter,
}

impl Metrics {
    /// The handles of handler `route` (a route name or an endpoint label).
    pub(crate) fn for_handler(&self, route: &str) -> RequestMetrics {
        let requests = METHODS
            .iter()
            .flat_map(|m| {
                CLASSES
                    .iter()
                    .map(move |c| self.requests.with_label_values(&[route, m, c]))
            })
            .collect();
        RequestMetrics {
            requests,
            duration: self.request_duration.with_label_values(&[route]),
        }
    }

    /// The handles of upstream `name`.
    /// `edge_proxy_api_requests_total` of route `route`, one handle per label value, in order.
    pub(crate) fn for_versions(&self, route: &str, labels: &[&str]) -> Vec<IntCounter> {
        labels
            .iter()
            .map(|v| self.api_requests.with_label_values(&[route, v]))
            .collect()
    }

    /// `edge_proxy_cache_requests_total` of route `route`, one handle per outcome, in
    /// `CacheOutcome::ALL` order (outcomes that share a label share its counter).
    pub(crate) fn for_cache(&self, route: &str) -> Vec<IntCounter> {
        crate::policy::caching::CacheOutcome::ALL
            .iter()
            .map(|o| self.cache_requests.with_label_values(&[route, o.label()]))
            .collect()
    }

    pub(crate) fn for_upstream(&self, name: &str) -> UpstreamMetrics {
        UpstreamMetrics {
            duration: self.upstream_duration.with_label_values(&[name]),
            errors: self.upstream_errors.with_label_values(&[name]),
        }
    }
}

/// Holds a gauge up (requests or connections in flight) until dropped, however the request or
/// connection ends.
pub(crate) struct InFlight(IntGauge);

impl InFlight {
    pub(crate) fn start(g: &IntGauge) -> Self {
        g.inc();
        Self(g.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
