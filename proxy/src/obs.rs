//! Observability: Prometheus metrics, the access log, W3C trace context, and the cap on log lines
//! clients cause.

pub(crate) mod access_log;
pub(crate) mod log_cap;
pub(crate) mod metrics;
pub(crate) mod trace;
