//! Prometheus registration shared by both services: a metric is a [`Spec`] (name, help, labels,
//! declared once as a constant next to the struct that holds it) and a [`MetricSet`] registers it
//! on a per-instance registry, so several services in one test process stay separate.

use prometheus::core::Collector;
use prometheus::{
    Counter, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// One metric's name, help text and label names.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

impl Spec {
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Self { name, help, labels }
    }

    fn opts(&self) -> Opts {
        Opts::new(self.name, self.help)
    }
}

/// A registry and the histogram buckets its service uses.
pub struct MetricSet {
    registry: Registry,
    buckets: &'static [f64],
}

impl MetricSet {
    pub fn new(buckets: &'static [f64]) -> Self {
        Self {
            registry: Registry::new(),
            buckets,
        }
    }

    fn register<C: Collector + Clone + 'static>(&self, c: C) -> Result<C, prometheus::Error> {
        self.registry.register(Box::new(c.clone()))?;
        Ok(c)
    }

    pub fn counter(&self, s: &Spec) -> Result<IntCounter, prometheus::Error> {
        self.register(IntCounter::with_opts(s.opts())?)
    }

    /// A float counter (seconds totals).
    pub fn float_counter(&self, s: &Spec) -> Result<Counter, prometheus::Error> {
        self.register(Counter::with_opts(s.opts())?)
    }

    pub fn counter_vec(&self, s: &Spec) -> Result<IntCounterVec, prometheus::Error> {
        self.register(IntCounterVec::new(s.opts(), s.labels)?)
    }

    pub fn gauge(&self, s: &Spec) -> Result<IntGauge, prometheus::Error> {
        self.register(IntGauge::with_opts(s.opts())?)
    }

    pub fn gauge_vec(&self, s: &Spec) -> Result<IntGaugeVec, prometheus::Error> {
        self.register(IntGaugeVec::new(s.opts(), s.labels)?)
    }

    /// A histogram on the set's buckets.
    pub fn histogram_vec(&self, s: &Spec) -> Result<HistogramVec, prometheus::Error> {
        let opts = HistogramOpts::new(s.name, s.help).buckets(self.buckets.to_vec());
        self.register(HistogramVec::new(opts, s.labels)?)
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_metrics_render_and_duplicates_are_refused() {
        let m = MetricSet::new(&[0.1, 1.0]);
        let hits = Spec::new("t_hits_total", "Hits", &["route"]);
        m.counter_vec(&hits)
            .unwrap()
            .with_label_values(&["a"])
            .inc();
        m.histogram_vec(&Spec::new("t_seconds", "Time", &["route"]))
            .unwrap()
            .with_label_values(&["a"])
            .observe(0.5);
        let text = m.render();
        assert!(text.contains("t_hits_total{route=\"a\"} 1"), "{text}");
        assert!(
            text.contains("t_seconds_bucket{route=\"a\",le=\"1\"} 1"),
            "{text}"
        );
        assert!(m.counter_vec(&hits).is_err(), "registered twice");
    }
}
