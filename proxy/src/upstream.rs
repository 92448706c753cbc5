//! Named upstream pools: round-robin over `host:port` peers with TCP health checks
//! (`pingora-load-balancing`). Dead peers leave the rotation until a check succeeds again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use pingora::lb::selection::RoundRobin;
use pingora::lb::{health_check::TcpHealthCheck, LoadBalancer};
use pingora::services::background::{background_service, GenBackgroundService};

use crate::config::UpstreamConfig;

/// How many peers `select` may skip over looking for a healthy one.
const MAX_SELECT_ITERATIONS: usize = 256;

pub struct Pool {
    pub name: String,
    lb: Arc<LoadBalancer<RoundRobin>>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

impl Pool {
    /// Builds the pool and the background service that runs its health checks.
    pub fn from_config(
        cfg: &UpstreamConfig,
    ) -> anyhow::Result<(Self, GenBackgroundService<LoadBalancer<RoundRobin>>)> {
        let mut lb =
            LoadBalancer::<RoundRobin>::try_from_iter(cfg.peers.iter().map(String::as_str))
                .with_context(|| format!("resolving the peers of upstream `{}`", cfg.name))?;
        let mut hc = TcpHealthCheck::new();
        hc.peer_template.options.connection_timeout = Some(cfg.connect_timeout);
        lb.set_health_check(hc);
        lb.health_check_frequency = Some(cfg.health_check_interval);
        lb.parallel_health_check = true;
        let service = background_service(&format!("health check {}", cfg.name), lb);
        let lb = service.task();
        Ok((
            Self {
                name: cfg.name.clone(),
                lb,
                connect_timeout: cfg.connect_timeout,
                read_timeout: cfg.read_timeout,
            },
            service,
        ))
    }

    /// The next healthy peer, round-robin.
    pub fn select(&self) -> Option<SocketAddr> {
        self.lb
            .select(b"", MAX_SELECT_ITERATIONS)
            .and_then(|b| b.addr.as_inet().copied())
    }

    /// Peers passing their health check.
    pub fn healthy_peers(&self) -> usize {
        let backends = self.lb.backends();
        backends
            .get_backend()
            .iter()
            .filter(|b| backends.ready(b))
            .count()
    }

    /// Configured peers.
    pub fn peers(&self) -> usize {
        self.lb.backends().get_backend().len()
    }
}
