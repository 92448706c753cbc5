//! Prometheus metrics for the backend, served on the admin listener only.
//!
//! Labels are bounded: the route template (`/todos/{id}`), never a raw path, id or email.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::store::Store;

/// Buckets from 0.5 ms to 10 s: database-backed handlers live in the low milliseconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    pool_connections: IntGaugeVec,
    pool_acquires: IntCounter,
    pool_acquire_wait: prometheus::Counter,
    /// The store's totals at the last scrape, so the counters advance by the difference.
    pool_seen: std::sync::Mutex<(u64, u64)>,
    pub db_query_duration: HistogramVec,
    pub users_registered: IntCounter,
    pub todos_created: IntCounter,
    pub todos_completed: IntCounter,
}

impl Metrics {
    pub fn new() -> Result<Arc<Self>, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "todo_backend_http_requests_total",
                "HTTP requests by route template, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "todo_backend_http_request_duration_seconds",
                "HTTP request duration by route template",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )?;
        let pool_connections = IntGaugeVec::new(
            Opts::new(
                "todo_backend_db_pool_connections",
                "Database pool connections by state",
            ),
            &["state"],
        )?;
        let db_query_duration = HistogramVec::new(
            HistogramOpts::new(
                "todo_backend_db_query_duration_seconds",
                "Store operations (including pool acquire) by operation",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["op"],
        )?;
        let pool_acquires = IntCounter::new(
            "todo_backend_db_pool_acquires_total",
            "Connections taken from the pool",
        )?;
        let pool_acquire_wait = prometheus::Counter::new(
            "todo_backend_db_pool_acquire_wait_seconds_total",
            "Time spent waiting for a pool connection (rate / acquires rate = mean wait)",
        )?;
        let users_registered =
            IntCounter::new("todo_backend_users_registered_total", "Users registered")?;
        let todos_created = IntCounter::new("todo_backend_todos_created_total", "Todos created")?;
        let todos_completed = IntCounter::new(
            "todo_backend_todos_completed_total",
            "Todos marked completed",
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(pool_connections.clone()))?;
        registry.register(Box::new(db_query_duration.clone()))?;
        registry.register(Box::new(pool_acquires.clone()))?;
        registry.register(Box::new(pool_acquire_wait.clone()))?;
        registry.register(Box::new(users_registered.clone()))?;
        registry.register(Box::new(todos_created.clone()))?;
        registry.register(Box::new(todos_completed.clone()))?;
        Ok(Arc::new(Self {
            registry,
            http_requests,
            http_duration,
            pool_connections,
            db_query_duration,
            pool_acquires,
            pool_acquire_wait,
            pool_seen: std::sync::Mutex::new((0, 0)),
            users_registered,
            todos_created,
            todos_completed,
        }))
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
            let mut seen = self
                .pool_seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (count, wait_ns) = (stats.acquires, stats.acquire_wait_ns);
            self.pool_acquires.inc_by(count.saturating_sub(seen.0));
            #[allow(clippy::cast_precision_loss)]
            self.pool_acquire_wait
                .inc_by(wait_ns.saturating_sub(seen.1) as f64 / 1e9);
            *seen = (count, wait_ns);
        }
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
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
