//! todo-backend: users, todos and categories behind edge-proxy.
//!
//! The backend trusts no caller by itself: every API route except registration and the proxy's
//! credential check requires the proxy's signed identity assertion (`identity.rs`). It knows nothing
//! about access tokens, sessions or Redis.
//!
//! `main.rs` is a shell: tests and the binary start the same [`Application`] (`build` then `run`).
//! Layer order is in `http.rs`; the storage contract is `store.rs`.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;

pub mod cache;
pub mod config;
pub mod credentials;
pub mod domain;
pub mod error;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod store;
pub mod versions;

pub use config::Config;

/// State shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn store::Store>,
    pub verifier: Arc<identity::AssertionVerifier>,
    pub passwords: Arc<credentials::Passwords>,
    pub metrics: Arc<metrics::Metrics>,
    /// Category trees by user and tree version (`cache.rs`).
    pub trees: Arc<cache::TreeCache>,
}

/// How long `/health/ready` waits for the database before reporting not ready.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The public API router (see `http.rs` for the layers).
pub fn app(state: AppState, request_timeout: Duration, max_body_bytes: usize) -> Router {
    http::router(state, request_timeout, max_body_bytes)
}

/// The admin router: health and metrics, on a loopback listener of its own.
pub fn admin_app(state: AppState) -> Router {
    Router::new()
        .route(
            "/health/live",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "not_ready", "reason": "database unreachable"})),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "not_ready", "reason": "database timeout"})),
        ),
    }
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(state.store.as_ref()),
    )
}

/// A built backend: listeners bound, database connected and migrated.
pub struct Application {
    listener: TcpListener,
    admin_listener: TcpListener,
    state: AppState,
    request_timeout: Duration,
    max_body_bytes: usize,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = store::connect(&config.database, &config.pool, config.migrate)
            .await
            .context("connecting to the database")?;
        Self::with_store(config, store).await
    }

    /// Like [`Self::build`] with a store the caller made (tests use one database per test).
    pub async fn with_store(config: Config, store: Arc<dyn store::Store>) -> anyhow::Result<Self> {
        let passwords = credentials::Passwords::from_config(&config.password)
            .context("setting up password hashing")?;
        let metrics = metrics::Metrics::new().context("registering metrics")?;
        let store: Arc<dyn store::Store> = Arc::new(store::InstrumentedStore::new(
            store,
            metrics.db_query_duration.clone(),
        ));
        let state = AppState {
            store,
            verifier: Arc::new(identity::AssertionVerifier::new(&config.identity)),
            passwords,
            trees: Arc::new(metrics.tree_cache()),
            metrics,
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding the API listener on {}", config.listen))?;
        let admin_listener = TcpListener::bind(config.admin_listen)
            .await
            .with_context(|| format!("binding the admin listener on {}", config.admin_listen))?;
        Ok(Self {
            listener,
            admin_listener,
            state,
            request_timeout: config.request_timeout,
            max_body_bytes: config.max_body_bytes,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = tx.send(true);
        });
        let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let api = axum::serve(
            self.listener,
            app(
                self.state.clone(),
                self.request_timeout,
                self.max_body_bytes,
            ),
        )
        .with_graceful_shutdown(wait(rx.clone()));
        let admin = axum::serve(self.admin_listener, admin_app(self.state))
            .with_graceful_shutdown(wait(rx));
        let (a, b) = tokio::join!(api.into_future(), admin.into_future());
        a.context("API server")?;
        b.context("admin server")?;
        Ok(())
    }
}

/// Asks a running backend's admin listener whether it is ready (`/health/ready`) or alive
/// (`/health/live`); `Ok`/`Err` carry one line to print.
pub async fn healthcheck(admin: SocketAddr, live: bool) -> Result<String, String> {
    let path = if live {
        "/health/live"
    } else {
        "/health/ready"
    };
    settings::healthcheck(admin, path).await
}

pub use settings::init_tracing;
