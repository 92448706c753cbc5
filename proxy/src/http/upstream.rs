//! Named upstream pools: round-robin over `host:port` peers, with active health (TCP checks run by
//! `pingora-load-balancing`) and passive health (a failed connect takes the peer out at once, a
//! successful one puts it back), Envoy's panic mode (when fewer than `panic_threshold` of the peers
//! are healthy, every peer is tried: a pool whose checks lag behind reality still reaches a peer
//! that is up), and a second peer for a retried request.
//!
//! Selection is ours, not pingora's `LoadBalancer::select`: pingora's health state cannot be set
//! from outside (no passive health) and it has no panic mode. Its load balancer only runs the
//! checks, whose every result lands in the peers' state here.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use pingora::lb::health_check::{HealthCheck, TcpHealthCheck};
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, LoadBalancer};
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
    /// Below this share of healthy peers, every peer is tried (0 turns panic mode off).
    pub panic_threshold: f64,
    /// How long an idle pooled connection is kept.
    pub idle_timeout: Duration,
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
        if !(0.0..=1.0).contains(&u.panic_threshold) {
            p.push(format!(
                "upstreams.{name}.panic_threshold: a share of the peers, from 0 to 1"
            ));
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
            panic_threshold: u.panic_threshold,
            idle_timeout: Duration::from_millis(u.idle_timeout_ms),
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

/// A peer's health as the pool knows it: not checked yet, up or down (the latest of the active
/// checks and the request path's own connects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Health {
    Unknown = 0,
    Up = 1,
    Down = 2,
}

struct Peer {
    addr: SocketAddr,
    health: AtomicU8,
}

impl Peer {
    fn health(&self) -> Health {
        match self.health.load(Relaxed) {
            1 => Health::Up,
            2 => Health::Down,
            _ => Health::Unknown,
        }
    }
}

/// The peers of one pool and their health, shared by the request path and the checks.
struct Peers(Vec<Peer>);

impl Peers {
    fn set(&self, addr: SocketAddr, health: Health) {
        if let Some(p) = self.0.iter().find(|p| p.addr == addr) {
            p.health.store(health as u8, Relaxed);
        }
    }
}

/// pingora's TCP check, reporting every result (not only flips) into the peers' state.
struct Recorded {
    tcp: TcpHealthCheck,
    peers: Arc<Peers>,
}

#[async_trait]
impl HealthCheck for Recorded {
    async fn check(&self, target: &Backend) -> pingora::Result<()> {
        let result = self.tcp.check(target).await;
        if let Some(addr) = target.addr.as_inet() {
            let health = if result.is_ok() {
                Health::Up
            } else {
                Health::Down
            };
            self.peers.set(*addr, health);
        }
        result
    }

    fn health_threshold(&self, success: bool) -> usize {
        self.tcp.health_threshold(success)
    }
}

pub struct Pool {
    pub name: String,
    peers: Arc<Peers>,
    next: AtomicUsize,
    panic_threshold: f64,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub idle_timeout: Duration,
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
        Pool::select(self, None)
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
        let peers: Vec<Peer> = lb
            .backends()
            .get_backend()
            .iter()
            .filter_map(|b| b.addr.as_inet().copied())
            .map(|addr| Peer {
                addr,
                health: AtomicU8::new(Health::Unknown as u8),
            })
            .collect();
        let peers = Arc::new(Peers(peers));
        let mut tcp = TcpHealthCheck::new();
        tcp.peer_template.options.connection_timeout = Some(cfg.connect_timeout);
        lb.set_health_check(Box::new(Recorded {
            tcp: *tcp,
            peers: Arc::clone(&peers),
        }));
        lb.health_check_frequency = Some(cfg.health_check_interval);
        lb.parallel_health_check = true;
        let service = background_service(&format!("health check {}", cfg.name), lb);
        Ok((Self::with_peers(cfg, peers), service))
    }

    fn with_peers(cfg: &UpstreamConfig, peers: Arc<Peers>) -> Self {
        Self {
            name: cfg.name.clone(),
            peers,
            next: AtomicUsize::new(0),
            panic_threshold: cfg.panic_threshold,
            connect_timeout: cfg.connect_timeout,
            read_timeout: cfg.read_timeout,
            idle_timeout: cfg.idle_timeout,
        }
    }

    /// The next peer, round-robin: a healthy one (or one not checked yet), or any one in panic
    /// mode; `avoid` (the peer a retry failed on) only when there is no other.
    pub fn select(&self, avoid: Option<SocketAddr>) -> Option<SocketAddr> {
        let peers = &self.peers.0;
        let n = peers.len();
        if n == 0 {
            return None;
        }
        let healthy = peers.iter().filter(|p| p.health() == Health::Up).count();
        #[allow(clippy::cast_precision_loss)] // peer counts are small
        let panic = (healthy as f64) < self.panic_threshold * n as f64;
        let usable = |p: &Peer| panic || p.health() != Health::Down;
        let start = self.next.fetch_add(1, Relaxed);
        let mut fallback = None;
        for i in 0..n {
            let p = &peers[(start + i) % n];
            if !usable(p) {
                continue;
            }
            if Some(p.addr) == avoid {
                fallback = Some(p.addr);
                continue;
            }
            return Some(p.addr);
        }
        fallback
    }

    /// What the request path saw when it connected to `addr`.
    pub fn observe(&self, addr: SocketAddr, connected: bool) {
        let health = if connected { Health::Up } else { Health::Down };
        self.peers.set(addr, health);
    }

    /// Whether a request whose connect to a peer failed may go to another: one retry, for an
    /// idempotent method (RFC 9110 9.2.2; nothing was sent, but the client may not expect a replay
    /// of anything else), when the pool has another peer.
    pub fn may_retry(&self, method: &http::Method, retried: bool) -> bool {
        use http::Method;
        let idempotent = matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
        );
        idempotent && !retried && self.peers.0.len() > 1
    }

    /// Peers whose latest check or connect succeeded (a peer not checked yet is not counted: the
    /// pool is reported healthy after its first check).
    pub fn healthy_peers(&self) -> usize {
        self.peers
            .0
            .iter()
            .filter(|p| p.health() == Health::Up)
            .count()
    }

    /// Configured peers.
    pub fn peers(&self) -> usize {
        self.peers.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(peers: &[&str], panic_threshold: f64) -> Pool {
        let peers = peers
            .iter()
            .map(|a| Peer {
                addr: a.parse().unwrap(),
                health: AtomicU8::new(Health::Unknown as u8),
            })
            .collect();
        let cfg = UpstreamConfig {
            name: "t".into(),
            peers: Vec::new(),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            health_check_interval: Duration::from_secs(1),
            panic_threshold,
            idle_timeout: Duration::from_secs(1),
        };
        Pool::with_peers(&cfg, Arc::new(Peers(peers)))
    }

    fn picks(p: &Pool, avoid: Option<SocketAddr>) -> Vec<u16> {
        let mut v: Vec<u16> = (0..6)
            .filter_map(|_| p.select(avoid))
            .map(|a| a.port())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    const A: &str = "127.0.0.1:1";
    const B: &str = "127.0.0.1:2";
    const C: &str = "127.0.0.1:3";

    #[test]
    fn healthy_and_unchecked_peers_take_turns_and_down_ones_sit_out() {
        let p = pool(&[A, B, C], 0.5);
        assert_eq!(picks(&p, None), [1, 2, 3], "nothing checked yet");
        assert_eq!(p.healthy_peers(), 0, "not reported healthy before a check");
        p.observe(A.parse().unwrap(), true);
        p.observe(B.parse().unwrap(), true);
        p.observe(C.parse().unwrap(), false);
        assert_eq!(picks(&p, None), [1, 2]);
        assert_eq!(p.healthy_peers(), 2);
    }

    #[test]
    fn below_the_panic_threshold_every_peer_is_tried() {
        let p = pool(&[A, B, C], 0.5);
        p.observe(A.parse().unwrap(), true);
        p.observe(B.parse().unwrap(), false);
        p.observe(C.parse().unwrap(), false);
        assert_eq!(picks(&p, None), [1, 2, 3], "1 of 3 healthy is under half");
        let lone = pool(&[A], 0.5);
        lone.observe(A.parse().unwrap(), false);
        assert_eq!(
            picks(&lone, None),
            [1],
            "a lone peer that was down is tried"
        );
        let strict = pool(&[A], 0.0);
        strict.observe(A.parse().unwrap(), false);
        assert_eq!(picks(&strict, None), Vec::<u16>::new(), "panic mode off");
    }

    #[test]
    fn a_retry_goes_to_another_peer_when_there_is_one() {
        let p = pool(&[A, B], 0.5);
        assert_eq!(picks(&p, Some(A.parse().unwrap())), [2]);
        let lone = pool(&[A], 0.5);
        assert_eq!(picks(&lone, Some(A.parse().unwrap())), [1]);
    }
}
