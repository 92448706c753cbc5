//! Named upstream pools: round-robin over `host:port` peers with TCP health checks
//! (`pingora-load-balancing`). Dead peers leave the rotation until a check succeeds again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use pingora::lb::selection::RoundRobin;
use pingora::lb::{health_check::TcpHealthCheck, LoadBalancer};
use pingora::services::background::{background_service, GenBackgroundService};

use settings::Problems;

use crate::raw::RawUpstream;

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub name: String,
    /// `host:port`; host names are resolved once at start-up.
    pub peers: Vec<String>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub health_check_interval: Duration,
}

impl UpstreamConfig {
    /// Validates `[upstreams.<name>]`, pushing every problem.
    pub fn from_raw(name: &str, u: &RawUpstream, p: &mut Problems) -> Self {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            p.push(format!("upstreams.{name}: use letters, digits, `-` and `_` in upstream names (they are metric labels)"));
        }
        if u.peers.is_empty() {
            p.push(format!(
                "upstreams.{name}.peers: at least one peer is required"
            ));
        }
        for peer in &u.peers {
            if !valid_peer(peer) {
                p.push(format!("upstreams.{name}.peers: `{peer}` is not host:port"));
            }
        }
        if u.connect_timeout_ms == 0 || u.read_timeout_ms == 0 || u.health_check_interval_ms == 0 {
            p.push(format!(
                "upstreams.{name}: timeouts and the health-check interval must be greater than 0"
            ));
        }
        UpstreamConfig {
            name: name.to_owned(),
            peers: u.peers.clone(),
            connect_timeout: Duration::from_millis(u.connect_timeout_ms),
            read_timeout: Duration::from_millis(u.read_timeout_ms),
            health_check_interval: Duration::from_millis(u.health_check_interval_ms),
        }
    }
}

fn valid_peer(peer: &str) -> bool {
    let Some((host, port)) = peer.rsplit_once(':') else {
        return false;
    };
    !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
}

/// What a route is bound to once the proxy is built: its pool and its metric handles.
pub(crate) struct Target {
    /// Where the route's requests go.
    pub dest: Dest,
    pub requests: crate::obs::metrics::RequestMetrics,
    /// Per supported version of the route's versioning scheme (same order): another pool, if the
    /// scheme sends that version elsewhere.
    pub versions: Vec<Option<Dest>>,
    /// `edge_proxy_api_requests_total{route, api_version}`, in `Versioning::labels` order.
    pub api_requests: Vec<prometheus::IntCounter>,
    /// `edge_proxy_cache_requests_total{route, result}`, in `CacheOutcome::ALL` order (empty on a
    /// route that does not store).
    pub cache_results: Vec<prometheus::IntCounter>,
}

/// An upstream pool as a request uses it: its configured name (the assertion audience and the
/// metric label), its peers, and its metric handles.
pub(crate) struct Dest {
    pub name: String,
    pub pool: Arc<Pool>,
    pub metrics: crate::obs::metrics::UpstreamMetrics,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("pool", &self.dest.name)
            .finish_non_exhaustive()
    }
}

/// How many peers `select` may skip over looking for a healthy one.
const MAX_SELECT_ITERATIONS: usize = 256;

pub struct Pool {
    pub name: String,
    lb: Arc<LoadBalancer<RoundRobin>>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl crate::login::flow::PeerSource for Pool {
    fn select(&self) -> Option<SocketAddr> {
        Pool::select(self)
    }

    fn name(&self) -> &str {
        &self.name
    }
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
