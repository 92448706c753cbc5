//! Observability: Prometheus metrics, the access log and W3C trace context.

pub(crate) mod access_log;
pub(crate) mod metrics;
pub(crate) mod trace;
