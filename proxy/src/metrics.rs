//! Prometheus metrics of the proxy, served only on the admin listener (R-OBS-1).
//! One registry per `Gateway`, not a global, so several proxies in one test process stay separate.
//! Labels are bounded: route names, methods from a fixed list, status codes, reasons; never ids,
//! emails, IPs or raw paths (R-OBS-2).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Buckets from 50 µs to 10 s: proxy-local work is sub-millisecond and must be told apart from
/// upstream latency (50 µs and 500 µs fall in different buckets).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub auth_failures: IntCounterVec,
    pub login_attempts: IntCounterVec,
    pub login_verifications: IntCounter,
    pub lockouts: IntCounter,
    pub ip_bans: IntCounter,
    pub body_limit_rejections: IntCounter,
    pub store_errors: IntCounter,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "edge_proxy_requests_total",
                "Requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "edge_proxy_request_duration_seconds",
                "Time from request start to the end of the response, by route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )?;
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "edge_proxy_auth_failures_total",
                "Refused credentials by reason",
            ),
            &["reason"],
        )?;
        let login_attempts = IntCounterVec::new(
            Opts::new(
                "edge_proxy_login_attempts_total",
                "Login attempts by result",
            ),
            &["result"],
        )?;
        let login_verifications = IntCounter::new(
            "edge_proxy_login_verifications_total",
            "Credential checks sent to the upstream",
        )?;
        let lockouts = IntCounter::new(
            "edge_proxy_lockouts_total",
            "Accounts locked (or long-blocked) by consecutive login failures",
        )?;
        let ip_bans = IntCounter::new(
            "edge_proxy_ip_bans_total",
            "Client IPs banned for login failures",
        )?;
        let body_limit_rejections = IntCounter::new(
            "edge_proxy_body_limit_rejections_total",
            "Requests refused for exceeding their body limit",
        )?;
        let store_errors = IntCounter::new(
            "edge_proxy_store_errors_total",
            "Session store operations that failed or timed out",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(auth_failures.clone()))?;
        registry.register(Box::new(login_attempts.clone()))?;
        registry.register(Box::new(login_verifications.clone()))?;
        registry.register(Box::new(lockouts.clone()))?;
        registry.register(Box::new(ip_bans.clone()))?;
        registry.register(Box::new(body_limit_rejections.clone()))?;
        registry.register(Box::new(store_errors.clone()))?;
        Ok(Self {
            registry,
            requests,
            request_duration,
            auth_failures,
            login_attempts,
            login_verifications,
            lockouts,
            ip_bans,
            body_limit_rejections,
            store_errors,
        })
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Standard methods by name, anything else as `other`, so clients cannot invent label values.
pub fn bounded_method(m: &http::Method) -> &'static str {
    use http::Method;
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
