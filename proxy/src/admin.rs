//! The admin listener (loopback by default, never the public port): `/healthz`, `/readyz`, `/metrics`
//! and the admin API, which needs `Authorization: Bearer <admin token>`. It runs as a pingora background
//! service so it starts and stops with the proxy. Every admin action is logged.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parking_lot::Mutex;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use crate::clock::SharedClock;
use crate::http::upstream::Pool;
use crate::login::credentials::normalise_account;
use crate::login::flow::account_hash;
use crate::obs::metrics::Metrics;
use crate::session::SessionStore;
use crate::throttle::AttemptStore;

pub mod client;

/// How long `/readyz` waits for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct AdminState {
    pub sessions: Arc<dyn SessionStore>,
    pub attempts: Arc<dyn AttemptStore>,
    pub pools: Arc<Vec<Arc<Pool>>>,
    pub metrics: Arc<Metrics>,
    /// SHA-256 of the admin token: compared in constant time, never kept in the clear here.
    pub token_digest: [u8; 32],
    /// Revoke-all keeps the not-before mark this long (the longest token lifetime plus leeway).
    pub max_token_lifetime: i64,
    /// External issuers by name, with how long their revocations are kept (their longest token
    /// lifetime plus leeway).
    pub issuers: Arc<std::collections::HashMap<String, i64>>,
    /// The public listener (pingora binds it when the server runs, after this listener exists).
    pub public_listener: Arc<PublicListener>,
    pub clock: SharedClock,
}

/// Whether the public listener accepts connections yet. The admin listener is bound at build time and
/// pingora binds the public one when the server starts, so for a moment `/readyz` could say 200 for a
/// proxy that refuses connections. It is checked with a connect until that first succeeds.
#[derive(Debug)]
pub struct PublicListener {
    addr: std::net::SocketAddr,
    bound: std::sync::atomic::AtomicBool,
}

impl PublicListener {
    pub fn new(listen: std::net::SocketAddr) -> Self {
        // A wildcard listen address is reached on loopback.
        let ip = match listen.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
            ip => ip,
        };
        Self {
            addr: std::net::SocketAddr::new(ip, listen.port()),
            bound: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// True once a connection to the public listener has succeeded.
    pub async fn accepting(&self) -> bool {
        use std::sync::atomic::Ordering;
        if self.bound.load(Ordering::Acquire) {
            return true;
        }
        let connected =
            tokio::time::timeout(READY_TIMEOUT, tokio::net::TcpStream::connect(self.addr))
                .await
                .is_ok_and(|c| c.is_ok());
        if connected {
            self.bound.store(true, Ordering::Release);
        }
        connected
    }
}

impl AdminState {
    /// `edge_proxy_upstream_healthy_peers{upstream}`.
    fn record_healthy_peers(&self, pool: &Pool, healthy: usize) {
        self.metrics
            .upstream_healthy_peers
            .with_label_values(&[&pool.name])
            .set(i64::try_from(healthy).unwrap_or(i64::MAX));
    }

    pub fn token_digest(token: &SecretString) -> [u8; 32] {
        Sha256::digest(token.expose_secret().as_bytes()).into()
    }
}

pub fn router(state: AdminState) -> Router {
    let admin = Router::new()
        .route("/admin/accounts/{email}", get(account_status))
        .route("/admin/accounts/{email}/unlock", post(unlock))
        .route("/admin/users/{user_id}/revoke-all", post(revoke_all))
        .route("/admin/tokens/{jti}/revoke", post(revoke_token))
        .route(
            "/admin/issuers/{issuer}/users/{sub}/revoke-all",
            post(revoke_external_user),
        )
        .route(
            "/admin/issuers/{issuer}/tokens/{jti}/revoke",
            post(revoke_external_token),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .merge(admin)
        .fallback(|| async { json_error(StatusCode::NOT_FOUND, "not_found") })
        .with_state(state)
}

/// Every `/admin/*` route needs the admin token; a refusal is logged with the route's template
/// (never its parameters, which may be an email address).
async fn require_admin(State(s): State<AdminState>, request: Request, next: Next) -> Response {
    if authorised(&s, request.headers()) {
        return next.run(request).await;
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("-", MatchedPath::as_str);
    tracing::warn!(%route, "admin request refused: bad admin token");
    unauthorised()
}

fn json_error(status: StatusCode, code: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({ "error": code })),
    )
        .into_response()
}

/// DESIGN.md 7.1: ready means the config is loaded, the public listener accepts and the store answers. Upstream health is
/// reported (body and `edge_proxy_upstream_healthy_peers`) but never makes the proxy unready: one
/// dead service behind a shared proxy must not take the proxy out of rotation for all the others.
async fn ready(State(s): State<AdminState>) -> Response {
    let store = tokio::time::timeout(READY_TIMEOUT, s.sessions.ping()).await;
    let store_ok = matches!(store, Ok(Ok(())));
    let listening = s.public_listener.accepting().await;
    let mut upstreams = serde_json::Map::new();
    for pool in s.pools.iter() {
        let healthy = pool.healthy_peers();
        s.record_healthy_peers(pool, healthy);
        upstreams.insert(
            pool.name.clone(),
            serde_json::json!({ "healthy_peers": healthy, "peers": pool.peers() }),
        );
    }
    let ready = store_ok && listening;
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "store": if store_ok { "ok" } else { "unreachable" },
        "listener": if listening { "accepting" } else { "not_bound" },
        "upstreams": upstreams,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    for pool in s.pools.iter() {
        s.record_healthy_peers(pool, pool.healthy_peers());
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

/// Checks `Authorization: Bearer <admin token>` in constant time.
fn authorised(s: &AdminState, headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(v), None) = (values.next(), values.next()) else {
        return false;
    };
    let Some(token) = v
        .to_str()
        .ok()
        .and_then(|t| t.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
    else {
        return false;
    };
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    digest.ct_eq(&s.token_digest).into()
}

fn unauthorised() -> Response {
    let mut r = json_error(StatusCode::UNAUTHORIZED, "unauthorized");
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"edge-proxy-admin\""),
    );
    r
}

fn store_down(error: &crate::store::StoreError) -> Response {
    tracing::warn!(%error, "admin action failed: store unavailable");
    let mut r = json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    r
}

async fn revoke_all(State(s): State<AdminState>, Path(user_id): Path<String>) -> Response {
    let now = s.clock.now();
    match s
        .sessions
        .revoke_all(&user_id, now + s.max_token_lifetime, now)
        .await
    {
        Ok(()) => {
            tracing::info!(action = "revoke-all", user = %user_id, "admin: all sessions of the user revoked");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => store_down(&e),
    }
}

async fn revoke_token(State(s): State<AdminState>, Path(jti): Path<String>) -> Response {
    match s.sessions.revoke_jti(&jti).await {
        Ok(was_live) => {
            tracing::info!(action = "revoke-token", %jti, was_live, "admin: token revoked");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => store_down(&e),
    }
}

/// `POST /admin/issuers/{issuer}/users/{sub}/revoke-all`: refuses every token of an external user
/// issued before now (R-JWT-9), on every replica sharing the store.
async fn revoke_external_user(
    State(s): State<AdminState>,
    Path((issuer, sub)): Path<(String, String)>,
) -> Response {
    let Some(keep) = s.issuers.get(&issuer) else {
        return json_error(StatusCode::NOT_FOUND, "unknown_issuer");
    };
    let now = s.clock.now();
    match s.sessions.deny_user(&issuer, &sub, now + *keep, now).await {
        Ok(()) => {
            tracing::info!(action = "revoke-external-user", %issuer, user = %sub, "admin: all tokens of the external user revoked");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => store_down(&e),
    }
}

/// `POST /admin/issuers/{issuer}/tokens/{jti}/revoke`: denies one external token. Its `exp` is not
/// known here, so the entry is kept for the issuer's longest lifetime.
async fn revoke_external_token(
    State(s): State<AdminState>,
    Path((issuer, jti)): Path<(String, String)>,
) -> Response {
    let Some(keep) = s.issuers.get(&issuer) else {
        return json_error(StatusCode::NOT_FOUND, "unknown_issuer");
    };
    let now = s.clock.now();
    match s.sessions.deny(&issuer, &jti, now + *keep, now).await {
        Ok(()) => {
            tracing::info!(action = "revoke-external-token", %issuer, %jti, "admin: external token revoked");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => store_down(&e),
    }
}

/// `GET /admin/accounts/{email}`: the account's throttle state (R-LOGIN-4).
async fn account_status(State(s): State<AdminState>, Path(email): Path<String>) -> Response {
    let account = normalise_account(&email);
    let now = s.clock.now_ms();
    match s.attempts.account(&account, now).await {
        Ok(state) => {
            tracing::info!(action = "account-status", account = %account_hash(&account), "admin: account state read");
            let blocked = state.blocked_until_ms > now.get();
            (
                [(header::CACHE_CONTROL, "no-store")],
                Json(serde_json::json!({
                    "account": account,
                    "failures": state.fail_count,
                    "locked": state.locked,
                    "blocked": blocked,
                    "blocked_until": blocked.then_some(state.blocked_until_ms / 1000),
                    "last_failure_at": (state.last_fail_at_ms > 0).then_some(state.last_fail_at_ms / 1000),
                })),
            )
                .into_response()
        }
        Err(e) => store_down(&e),
    }
}

/// `POST /admin/accounts/{email}/unlock`: clears every throttle state of the account; 204 whether or
/// not there was any (R-LOGIN-4).
async fn unlock(State(s): State<AdminState>, Path(email): Path<String>) -> Response {
    let account = normalise_account(&email);
    match s.attempts.unlock(&account).await {
        Ok(()) => {
            tracing::warn!(action = "unlock", account = %account_hash(&account), "admin: account unlocked");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => store_down(&e),
    }
}

/// Serves the admin router on a listener bound at build time (so port 0 works and bind errors are
/// reported at start-up, not inside a background task).
pub struct AdminService {
    listener: Mutex<Option<std::net::TcpListener>>,
    state: AdminState,
}

impl AdminService {
    pub fn new(listener: std::net::TcpListener, state: AdminState) -> Self {
        Self {
            listener: Mutex::new(Some(listener)),
            state,
        }
    }
}

#[async_trait]
impl BackgroundService for AdminService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(std_listener) = self.listener.lock().take() else {
            return;
        };
        let listener = match std_listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(std_listener))
        {
            Ok(l) => l,
            Err(error) => {
                tracing::error!(%error, "admin listener could not start");
                return;
            }
        };
        let app = router(self.state.clone());
        let stop = async move {
            let _ = shutdown.changed().await;
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(%error, "admin listener failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_public_listener_counts_only_once_it_accepts() {
        // A port nobody listens on yet: not ready.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let public = PublicListener::new(addr);
        assert!(!public.accepting().await, "nothing listens yet");
        // Bound: ready from then on, without connecting again.
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        assert!(public.accepting().await);
        drop(listener);
        assert!(public.accepting().await, "remembered once seen");
        let wildcard = PublicListener::new("0.0.0.0:8080".parse().unwrap());
        assert_eq!(wildcard.addr, "127.0.0.1:8080".parse().unwrap());
    }
}
