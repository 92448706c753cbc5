//! Prometheus metrics for the backend, served on the admin listener only.
//!
//! Labels are bounded: the route template (`/todos/{id}`), never a raw path, id or email.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{Counter, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec};
use settings::metrics::{MetricSet, Spec};

use crate::store::Store;

/// Buckets from 0.5 ms to 10 s: database-backed handlers live in the low milliseconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct Metrics {
    set: MetricSet,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    pool_connections: IntGaugeVec,
    pool_acquires: IntCounter,
    pool_acquire_wait: Counter,
    /// The store's totals at the last scrape, so the counters advance by the difference.
    pool_seen: parking_lot::Mutex<(u64, u64)>,
    pub db_query_duration: HistogramVec,
    pub users_registered: IntCounter,
    pub todos_created: IntCounter,
    pub todos_completed: IntCounter,
    cache_requests: IntCounterVec,
}

const HTTP_REQUESTS: Spec = Spec::new(
    "todo_backend_http_requests_total",
    "HTTP requests by route template, method and status",
    &["route", "method", "status"],
);
const HTTP_DURATION: Spec = Spec::new(
    "todo_backend_http_request_duration_seconds",
    "HTTP request duration by route template",
    &["route"],
);
const POOL_CONNECTIONS: Spec = Spec::new(
    "todo_backend_db_pool_connections",
    "Database pool connections by state",
    &["state"],
);
const DB_QUERY_DURATION: Spec = Spec::new(
    "todo_backend_db_query_duration_seconds",
    "Store operations (including pool acquire) by operation",
    &["op"],
);
const POOL_ACQUIRES: Spec = Spec::new(
    "todo_backend_db_pool_acquires_total",
    "Connections taken from the pool",
    &[],
);
const POOL_ACQUIRE_WAIT: Spec = Spec::new(
    "todo_backend_db_pool_acquire_wait_seconds_total",
    "Time spent waiting for a pool connection (rate / acquires rate = mean wait)",
    &[],
);
const USERS_REGISTERED: Spec = Spec::new(
    "todo_backend_users_registered_total",
    "Users registered",
    &[],
);
const TODOS_CREATED: Spec = Spec::new("todo_backend_todos_created_total", "Todos created", &[]);
const CACHE_REQUESTS: Spec = Spec::new(
    "todo_backend_cache_requests_total",
    "In-process cache lookups by cache and result (hit, miss)",
    &["cache", "result"],
);
const TODOS_COMPLETED: Spec = Spec::new(
    "todo_backend_todos_completed_total",
    "Todos marked completed",
    &[],
);

impl Metrics {
    pub fn new() -> Result<Arc<Self>, prometheus::Error> {
        let m = MetricSet::new(LATENCY_BUCKETS);
        Ok(Arc::new(Self {
            http_requests: m.counter_vec(&HTTP_REQUESTS)?,
            http_duration: m.histogram_vec(&HTTP_DURATION)?,
            pool_connections: m.gauge_vec(&POOL_CONNECTIONS)?,
            db_query_duration: m.histogram_vec(&DB_QUERY_DURATION)?,
            pool_acquires: m.counter(&POOL_ACQUIRES)?,
            pool_acquire_wait: m.float_counter(&POOL_ACQUIRE_WAIT)?,
            pool_seen: parking_lot::Mutex::new((0, 0)),
            users_registered: m.counter(&USERS_REGISTERED)?,
            todos_created: m.counter(&TODOS_CREATED)?,
            todos_completed: m.counter(&TODOS_COMPLETED)?,
            cache_requests: m.counter_vec(&CACHE_REQUESTS)?,
            set: m,
        }))
    }

    /// The category-tree cache, counting into `todo_backend_cache_requests_total`.
    pub fn tree_cache(&self) -> crate::cache::TreeCache {
        let count = |r: &str| self.cache_requests.with_label_values(&["category_tree", r]);
        crate::cache::TreeCache::new(count("hit"), count("miss"))
    }

    /// The text exposition, with pool gauges refreshed from `store` first.
    pub fn render(&self, store: &dyn Store) -> String {
        let stats = store.pool_stats();
        self.pool_connections
            .with_label_values(&["idle"])
            .set(i64::from(stats.idle));
        self.pool_connections
            .with_label_values(&["in_use"])
            .set(i64::from(stats.size.saturating_sub(stats.idle)));
        {
            let mut seen = self.pool_seen.lock();
            let (count, wait_ns) = (stats.acquires, stats.acquire_wait_ns);
            self.pool_acquires.inc_by(count.saturating_sub(seen.0));
            #[allow(clippy::cast_precision_loss)]
            self.pool_acquire_wait
                .inc_by(wait_ns.saturating_sub(seen.1) as f64 / 1e9);
            *seen = (count, wait_ns);
        }
        self.set.render()
    }
}

/// Records request count and duration by route template.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = bounded_method(req.method());
    let start = Instant::now();
    let resp = next.run(req).await;
    metrics
        .http_duration
        .with_label_values(&[&route])
        .observe(start.elapsed().as_secs_f64());
    metrics
        .http_requests
        .with_label_values(&[route.as_str(), method, resp.status().as_str()])
        .inc();
    resp
}

/// Standard methods by name, anything else as `other`, so a client cannot invent label values.
pub fn bounded_method(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
