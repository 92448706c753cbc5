//! `Gateway`: the only `ProxyHttp` implementation. It calls the policy modules in the order of the
//! phase table in `lib.rs` (and ARCHITECTURE.md); each phase method is thin, and every refusal goes
//! through one place, [`Gateway::reject`], which writes what `ProxyError::response` describes.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, StatusCode};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType};

use crate::auth::{presented, AccessClaims, Presented};
use crate::config::{AuthMode, SessionsConfig};
use crate::context::{Handler, RequestCtx};
use crate::error::ProxyError;
use crate::identity::{self, Asserter, IpNet};
use crate::issuers::{TokenOrigin, Verifier, VerifyFailure};
use crate::login::{
    email_of_malformed, normalise_account, CredentialClient, LoginRequest, VerifyError,
};
use crate::metrics::{bounded_method, status_class, Metrics};
use crate::routing::{check_path, RouteTable};
use crate::session::{SessionStatus, SessionStore, StoreError};
use crate::throttle::{retry_after_secs, AttemptStore, Begin, Outcome};
use crate::upstream::Pool;

/// Everything the gateway needs, built once from `Config` in `lib.rs`.
pub struct Gateway {
    pub(crate) routes: RouteTable,
    pub(crate) pools: Arc<Vec<Pool>>,
    /// Own tokens and those of configured external issuers.
    pub(crate) tokens: Verifier,
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) attempts: Arc<dyn AttemptStore>,
    /// Bounds credential checks in flight from this proxy, so a distributed spray (a fresh account
    /// and IP per request) cannot queue unbounded password-hashing work at the upstream.
    pub(crate) check_permits: tokio::sync::Semaphore,
    pub(crate) asserter: Asserter,
    pub(crate) credentials: CredentialClient,
    /// Index of the pool whose credential check login calls.
    pub(crate) login_pool: usize,
    pub(crate) paths: SessionsConfig,
    pub(crate) realm: String,
    pub(crate) trusted_proxies: Vec<IpNet>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) keepalive_idle: Duration,
    pub(crate) access_log: crate::access_log::AccessLog,
    pub(crate) request_metrics: bool,
    pub(crate) body_timeouts: crate::config::BodyTimeouts,
    pub(crate) security_headers: Arc<Vec<(http::HeaderName, http::HeaderValue)>>,
}

/// The current unix time in seconds (the clock JWT `iat`/`exp` use).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The current unix time in milliseconds (the throttle's clock).
pub fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Where the public keys of own tokens are published when they are signed with EdDSA (RFC 8414 style
/// well-known path; the file is a JWKS, RFC 7517).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// What `admit` decided.
enum Admit {
    /// Forward to the route's upstream.
    Forward,
    /// The proxy answered already (login, logout).
    Answered,
}

impl Gateway {
    /// The request filter's work, in order (see the phase table in `lib.rs`).
    async fn admit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Admit, ProxyError> {
        if let Some(h1) = session.as_downstream().as_http1() {
            crate::framing::check_raw_head(&h1.get_headers_raw_bytes())?;
        }
        crate::framing::check_head(session.req_header())?;
        self.resolve_client(session, ctx);
        strip_inbound(session.req_header_mut())?;

        let method = session.req_header().method.clone();
        if method == Method::TRACE || method == Method::CONNECT {
            return Err(ProxyError::MethodNotAllowed {
                allow: crate::error::FORWARDABLE_METHODS.into(),
            });
        }
        let path = session.req_header().uri.path().to_owned();
        check_path(&path).map_err(|_| ProxyError::InvalidPath)?;

        if path == JWKS_PATH {
            if let Some(jwks) = self.tokens.own.jwks(unix_now()) {
                ctx.handler = Handler::Jwks;
                if method != Method::GET {
                    return Err(ProxyError::MethodNotAllowed {
                        allow: "GET".into(),
                    });
                }
                check_content_length(session.req_header(), 0)?;
                // Verifiers cache the set; five minutes bounds how long a retired key stays trusted.
                let headers = [("cache-control", "public, max-age=300".to_owned())];
                return write_json(session, ctx, StatusCode::OK, &headers, jwks, false)
                    .await
                    .map(|()| Admit::Answered);
            }
        }
        if path == self.paths.login_path {
            ctx.handler = Handler::Login;
            return self.login(session, ctx).await.map(|()| Admit::Answered);
        }
        if path == self.paths.logout_path {
            ctx.handler = Handler::Logout;
            return self
                .logout(session, ctx, false)
                .await
                .map(|()| Admit::Answered);
        }
        if path == self.paths.logout_all_path {
            ctx.handler = Handler::LogoutAll;
            return self
                .logout(session, ctx, true)
                .await
                .map(|()| Admit::Answered);
        }

        let Some(route_idx) = self.routes.route_index(&path) else {
            return Err(ProxyError::NotFound);
        };
        ctx.handler = Handler::Route(route_idx);
        let route = &self.routes.routes()[route_idx];
        if let Some(policy) = &route.cors {
            if self
                .apply_cors(session, ctx, policy, &route.methods)
                .await?
            {
                return Ok(Admit::Answered);
            }
        }
        if !route.methods.contains(&method) {
            return Err(ProxyError::MethodNotAllowed {
                allow: route.allow.clone(),
            });
        }
        ctx.body_limit = route.max_body_bytes;
        check_content_length(session.req_header(), route.max_body_bytes)?;

        match route.auth {
            AuthMode::None => {}
            AuthMode::Required | AuthMode::Optional => {
                let required = route.auth == AuthMode::Required;
                match self.authenticate(session, ctx).await {
                    Ok((claims, origin)) => {
                        ctx.identity = Some(claims);
                        ctx.identity_issuer = match origin {
                            TokenOrigin::Own => None,
                            TokenOrigin::External(i) => {
                                Some(self.tokens.issuers[i].config.name.clone())
                            }
                        };
                    }
                    Err(ProxyError::MissingToken) if !required => ctx.auth = "anonymous",
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(Admit::Forward)
    }

    /// Applies the route's CORS policy; `Ok(true)` when a preflight was answered here (never forwarded).
    async fn apply_cors(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        policy: &crate::cors::CorsPolicy,
        route_methods: &[Method],
    ) -> Result<bool, ProxyError> {
        use crate::cors::Decision;
        ctx.cors_route = true;
        let headers = &session.req_header().headers;
        // A value that is not valid UTF-8 counts as an origin that cannot be allowed.
        let origins: Vec<&str> = headers
            .get_all(http::header::ORIGIN)
            .iter()
            .map(|v| v.to_str().unwrap_or("\u{0}"))
            .collect();
        let request_method = headers
            .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok());
        let request_headers: Vec<&str> = headers
            .get_all(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let method = session.req_header().method.clone();
        match policy.decide(
            &method,
            &origins,
            request_method,
            &request_headers,
            route_methods,
        ) {
            Decision::NotCors | Decision::DisallowedSafe => Ok(false),
            Decision::Allowed(h) => {
                ctx.cors_headers = h;
                Ok(false)
            }
            Decision::PreflightAllowed(h) => {
                ctx.cors_headers = h;
                write_json(
                    session,
                    ctx,
                    StatusCode::NO_CONTENT,
                    &[],
                    String::new(),
                    false,
                )
                .await?;
                Ok(true)
            }
            Decision::RefusedUnsafe => {
                self.metrics.cors_rejections.inc();
                Err(ProxyError::OriginNotAllowed)
            }
            Decision::PreflightRefused => {
                self.metrics.cors_rejections.inc();
                Err(ProxyError::PreflightRefused)
            }
        }
    }

    /// Client address from the connection; forwarded headers only from trusted proxies (R-LOGIN-8).
    fn resolve_client(&self, session: &Session, ctx: &mut RequestCtx) {
        let Some(peer) = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
        else {
            return;
        };
        let xff: Vec<&str> = if self.trusted_proxies.is_empty() {
            Vec::new()
        } else {
            session
                .req_header()
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect()
        };
        ctx.client_ip = Some(identity::client_ip(peer, &xff, &self.trusted_proxies));
        ctx.host = session
            .req_header()
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
    }

    /// Verifies the bearer token and its session (R-JWT-1, R-JWT-3, R-JWT-6, R-JWT-7): own tokens
    /// against the allowlist, external ones against the denylist of their issuer (R-JWT-9).
    async fn authenticate(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
    ) -> Result<(AccessClaims, TokenOrigin), ProxyError> {
        let (claims, origin) = self.verified_claims(session, ctx).await?;
        let now = unix_now();
        let status = match origin {
            TokenOrigin::Own => {
                self.timed(
                    "session_status",
                    self.sessions
                        .status(&claims.jti, &claims.sub, claims.iat, now),
                )
                .await?
            }
            TokenOrigin::External(i) => {
                self.timed(
                    "external_status",
                    self.sessions.external_status(
                        &self.tokens.issuers[i].config.name,
                        &claims.jti,
                        &claims.sub,
                        claims.iat,
                        now,
                    ),
                )
                .await?
            }
        };
        if status == SessionStatus::Revoked {
            ctx.auth = "revoked";
            self.metrics.auth("revoked");
            return Err(ProxyError::InvalidToken);
        }
        ctx.auth = "ok";
        self.metrics.auth("ok");
        Ok((claims, origin))
    }

    /// Signature and claims only (no store lookup).
    async fn verified_claims(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
    ) -> Result<(AccessClaims, TokenOrigin), ProxyError> {
        let req = session.req_header();
        let values: Vec<&[u8]> = req
            .headers
            .get_all(http::header::AUTHORIZATION)
            .iter()
            .map(http::HeaderValue::as_bytes)
            .collect();
        let token = match presented(&values, req.uri.query()) {
            Presented::Bearer(t) => t,
            // RFC 6750 3.1: another scheme (Basic, …) is no usable credential, so the challenge
            // carries no `error` attribute.
            Presented::None | Presented::OtherScheme => {
                ctx.auth = "missing";
                self.metrics.auth("missing");
                return Err(ProxyError::MissingToken);
            }
            Presented::Ambiguous => {
                ctx.auth = "invalid";
                self.metrics.auth("invalid");
                return Err(ProxyError::AmbiguousCredentials);
            }
        };
        match self.tokens.verify(token, unix_now()).await {
            Ok(verified) => Ok(verified),
            Err(VerifyFailure::Invalid(e)) => {
                ctx.auth = e.reason();
                self.metrics.auth(e.reason());
                Err(ProxyError::InvalidToken)
            }
            Err(VerifyFailure::KeysUnavailable) => {
                ctx.auth = "unavailable";
                tracing::warn!("an external issuer's keys are not loaded; failing closed");
                Err(ProxyError::Unavailable)
            }
        }
    }

    /// Runs one store operation, recording its latency; a failure fails closed (503).
    async fn timed<T>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, ProxyError> {
        let started = std::time::Instant::now();
        let result = call.await;
        self.metrics
            .store_duration
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        result.map_err(|e| self.store_failed(&e))
    }

    fn store_failed(&self, error: &StoreError) -> ProxyError {
        self.metrics.store_errors.inc();
        tracing::warn!(%error, "session store unavailable; failing closed");
        ProxyError::Unavailable
    }

    /// `POST /auth/login`: strict body, throttle check-and-reserve, credential check upstream, record
    /// the outcome, then mint and record the session (R-LOGIN, DESIGN.md section 3).
    async fn login(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<(), ProxyError> {
        if session.req_header().method != Method::POST {
            return Err(ProxyError::MethodNotAllowed {
                allow: "POST".into(),
            });
        }
        let max = self.paths.max_body_bytes;
        ctx.body_limit = max;
        check_content_length(session.req_header(), max)?;
        let body = read_body_capped(session, ctx, max).await?;
        let parsed = LoginRequest::parse(&body);
        let email = match &parsed {
            Some(req) => Some(req.email.clone()),
            None => email_of_malformed(&body),
        };
        let Some(email) = email else {
            self.metrics
                .login_attempts
                .with_label_values(&["bad_request"])
                .inc();
            return Err(ProxyError::InvalidRequest);
        };
        let account = normalise_account(&email);
        let ip = ctx
            .client_ip
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        // Held until the check is recorded; refused before any state is touched.
        let Ok(_permit) = self.check_permits.try_acquire() else {
            self.metrics
                .login_attempts
                .with_label_values(&["throttled"])
                .inc();
            tracing::warn!("login refused: credential checks at capacity");
            return Err(ProxyError::TooManyAttempts {
                retry_after_secs: 1,
            });
        };

        // Check and reserve before any verification (R-LOGIN-7): blocked, locked, banned or already in
        // flight → 429 without calling the upstream, whatever the password (R-LOGIN-2).
        let begin = self
            .timed(
                "login_begin",
                self.attempts
                    .begin(&account, &ip, &ctx.request_id, unix_now_ms()),
            )
            .await?;
        if let Begin::Throttled {
            reason,
            retry_after_ms,
        } = begin
        {
            self.metrics
                .login_attempts
                .with_label_values(&[reason.result_label()])
                .inc();
            tracing::info!(account = %account_hash(&account), ?reason, "login throttled");
            return Err(ProxyError::TooManyAttempts {
                retry_after_secs: retry_after_secs(retry_after_ms),
            });
        }

        let Some(req) = parsed else {
            // R-LOGIN-9: a malformed body naming an account counts as one failure for it.
            self.finish_attempt(&account, &ip, ctx, Outcome::Failure)
                .await?;
            self.metrics
                .login_attempts
                .with_label_values(&["bad_request"])
                .inc();
            return Err(ProxyError::InvalidRequest);
        };
        let Some(peer) = self.pools[self.login_pool].select() else {
            let _ = self
                .finish_attempt(&account, &ip, ctx, Outcome::Abandoned)
                .await;
            return Err(ProxyError::BadGateway);
        };
        let service = match self.service_assertion(&ctx.request_id) {
            Ok(s) => s,
            Err(e) => {
                let _ = self
                    .finish_attempt(&account, &ip, ctx, Outcome::Abandoned)
                    .await;
                return Err(e);
            }
        };
        self.metrics.login_verifications.inc();
        match self
            .credentials
            .verify(peer, &req, &ctx.request_id, &service)
            .await
        {
            Ok(user) => {
                self.finish_attempt(&account, &ip, ctx, Outcome::Success)
                    .await?;
                let now = unix_now();
                let minted = self
                    .tokens
                    .own
                    .mint(&user.user_id, &user.email, &user.roles, now)
                    .map_err(|error| {
                        tracing::error!(%error, "minting an access token failed");
                        ProxyError::Internal
                    })?;
                self.timed(
                    "session_insert",
                    self.sessions.insert(
                        &minted.claims.jti,
                        &minted.claims.sub,
                        minted.claims.exp,
                        now,
                    ),
                )
                .await?;
                self.metrics
                    .login_attempts
                    .with_label_values(&["success"])
                    .inc();
                let body = serde_json::json!({
                    "access_token": minted.token,
                    "token_type": "Bearer",
                    "expires_in": self.tokens.own.lifetime_secs(),
                });
                write_json(session, ctx, StatusCode::OK, &[], body.to_string(), false).await
            }
            Err(VerifyError::Refused) => {
                self.finish_attempt(&account, &ip, ctx, Outcome::Failure)
                    .await?;
                self.metrics
                    .login_attempts
                    .with_label_values(&["invalid"])
                    .inc();
                Err(ProxyError::InvalidCredentials)
            }
            Err(VerifyError::Upstream(error)) => {
                tracing::warn!(%error, "credential check failed");
                let _ = self
                    .finish_attempt(&account, &ip, ctx, Outcome::Abandoned)
                    .await;
                Err(ProxyError::BadGateway)
            }
        }
    }

    /// The proxy's own assertion for the credential check (the upstream serves it to nobody else).
    fn service_assertion(&self, request_id: &str) -> Result<String, ProxyError> {
        self.asserter
            .mint(
                &self.pools[self.login_pool].name,
                crate::identity::SERVICE_SUBJECT,
                "",
                &[],
                request_id,
                "POST",
                self.credentials.path(),
                unix_now(),
            )
            .map_err(|error| {
                tracing::error!(%error, "minting the service assertion failed");
                ProxyError::Internal
            })
    }

    /// Records a login outcome and releases the in-flight lease; counts and logs lockouts and bans.
    async fn finish_attempt(
        &self,
        account: &str,
        ip: &str,
        ctx: &RequestCtx,
        outcome: Outcome,
    ) -> Result<(), ProxyError> {
        let done = self
            .timed(
                "login_finish",
                self.attempts
                    .finish(account, ip, &ctx.request_id, outcome, unix_now_ms()),
            )
            .await?;
        let hash = account_hash(account);
        if done.locked_now {
            self.metrics.lockouts.inc();
            tracing::warn!(account = %hash, failures = done.state.fail_count, "account locked after consecutive login failures");
        } else if done.blocked_now {
            tracing::info!(account = %hash, failures = done.state.fail_count, blocked_until_ms = done.state.blocked_until_ms, "account temporarily blocked");
        }
        if done.ip_banned_now {
            self.metrics.ip_bans.inc();
            tracing::warn!(client = %ip, "client IP banned for login failures");
        }
        Ok(())
    }

    /// `POST /auth/logout` (this token) and `POST /auth/logout-all` (every token of the caller).
    async fn logout(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        all: bool,
    ) -> Result<(), ProxyError> {
        if session.req_header().method != Method::POST {
            return Err(ProxyError::MethodNotAllowed {
                allow: "POST".into(),
            });
        }
        check_content_length(session.req_header(), 0)?;
        let now = unix_now();
        if all {
            // Only a live session may end every session of its user.
            let (claims, origin) = self.authenticate(session, ctx).await?;
            match origin {
                TokenOrigin::Own => {
                    let max_lifetime = self.tokens.own.lifetime_secs() + 60;
                    self.timed(
                        "session_revoke_all",
                        self.sessions.revoke_all(&claims.sub, now, max_lifetime),
                    )
                    .await?;
                }
                TokenOrigin::External(i) => {
                    let issuer = &self.tokens.issuers[i].config;
                    self.timed(
                        "external_revoke_all",
                        self.sessions.deny_user(
                            &issuer.name,
                            &claims.sub,
                            now,
                            now + issuer.max_lifetime + 60,
                        ),
                    )
                    .await?;
                }
            }
            tracing::info!(user = %claims.sub, "logout-all: every session of the user revoked");
        } else {
            // A correctly signed token that is already revoked still gets 204 (RFC 7009 2.2).
            let (claims, origin) = self.verified_claims(session, ctx).await?;
            match origin {
                TokenOrigin::Own => {
                    self.timed(
                        "session_revoke",
                        self.sessions.revoke(&claims.jti, &claims.sub),
                    )
                    .await?;
                }
                TokenOrigin::External(i) => {
                    // Kept past `exp` by the leeway, so the token cannot come back within it.
                    self.timed(
                        "external_revoke",
                        self.sessions.deny(
                            &self.tokens.issuers[i].config.name,
                            &claims.jti,
                            claims.exp + 60,
                            now,
                        ),
                    )
                    .await?;
                }
            }
        }
        write_json(
            session,
            ctx,
            StatusCode::NO_CONTENT,
            &[],
            String::new(),
            false,
        )
        .await
    }

    /// Writes the answer for `err`; the one place proxy errors become responses.
    async fn reject(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        err: &ProxyError,
    ) -> pingora::Result<bool> {
        match err {
            ProxyError::PayloadTooLarge { .. } => self.metrics.body_limit_rejections.inc(),
            ProxyError::InvalidRequest
            | ProxyError::InvalidPath
            | ProxyError::UriTooLong
            | ProxyError::HeadersTooLarge => self
                .metrics
                .framing_rejections
                .with_label_values(&[err.code()])
                .inc(),
            _ => {}
        }
        let r = err.response(&self.realm);
        // An early answer must not leave unread body bytes on a reused connection (R-HTTP-3).
        let close =
            err.closes_connection() || (has_body(session.req_header()) && !session.is_body_done());
        let _ = write_json(session, ctx, r.status, &r.headers, r.body, close).await;
        if close && !session.is_body_done() {
            drain_briefly(session).await;
        }
        Ok(true)
    }

    /// The name of the upstream the request goes to, when it has a route.
    fn upstream_name(&self, ctx: &RequestCtx) -> Option<&str> {
        match ctx.handler {
            Handler::Route(i) => Some(&self.routes.routes()[i].upstream_name),
            _ => None,
        }
    }

    fn route_label(&self, ctx: &RequestCtx) -> &str {
        match ctx.handler {
            Handler::Route(i) => &self.routes.routes()[i].name,
            Handler::Login => "login",
            Handler::Logout => "logout",
            Handler::LogoutAll => "logout_all",
            Handler::Jwks => "jwks",
            Handler::None => "none",
        }
    }
}

/// Stable, non-reversible account label for logs (never the raw email, R-LOGIN-11).
pub fn account_hash(account: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(account.as_bytes());
    hex::encode(&d[..8])
}

fn has_body(req: &RequestHeader) -> bool {
    req.headers.contains_key(http::header::TRANSFER_ENCODING)
        || req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// Refuses a declared body over `max` before any of it is read (R-HTTP-2); the head's syntax was
/// checked by `framing::check_head`.
fn check_content_length(req: &RequestHeader, max: u64) -> Result<(), ProxyError> {
    match crate::framing::content_length(req) {
        Some(n) if n > max => Err(ProxyError::PayloadTooLarge { max_bytes: max }),
        _ => Ok(()),
    }
}

/// After an early answer on a request whose body is still arriving: read and discard what the client
/// keeps sending, for a bounded time and amount, before the connection closes. Closing a socket with
/// unread bytes makes the kernel send a reset, which can destroy the answer in flight (the client sees
/// a reset instead of the 413).
async fn drain_briefly(session: &mut Session) {
    /// Long enough for a client to notice the answer; short enough that a slow client cannot hold us.
    const DRAIN_TIME: Duration = Duration::from_secs(1);
    /// Bounded so a fast client cannot make us read an arbitrary upload.
    const DRAIN_BYTES: usize = 16 * 1024 * 1024;
    let deadline = tokio::time::Instant::now() + DRAIN_TIME;
    let mut drained = 0;
    while drained < DRAIN_BYTES && !session.is_body_done() {
        match tokio::time::timeout_at(deadline, session.read_request_body()).await {
            Ok(Ok(Some(chunk))) => drained += chunk.len(),
            _ => break,
        }
    }
}

/// Reads a whole (small) body, refusing it as soon as it passes `max` bytes.
async fn read_body_capped(
    session: &mut Session,
    ctx: &mut RequestCtx,
    max: u64,
) -> Result<Vec<u8>, ProxyError> {
    let mut body = Vec::new();
    loop {
        let read = session.read_request_body().await;
        if crate::conn::body_violation(session.as_downstream().stream()).is_some() {
            return Err(ProxyError::InvalidRequest);
        }
        match read {
            Ok(Some(chunk)) => {
                ctx.body_bytes += chunk.len() as u64;
                if ctx.body_bytes > max {
                    return Err(ProxyError::PayloadTooLarge { max_bytes: max });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(_) => return Err(ProxyError::InvalidRequest),
        }
    }
}

/// Removes every inbound identity or client-address header (R-ID-2) and applies `Connection` (R-ID-3).
fn strip_inbound(req: &mut RequestHeader) -> Result<(), ProxyError> {
    let mut hop_by_hop: Vec<String> = Vec::new();
    for v in req.headers.get_all(http::header::CONNECTION) {
        let text = v.to_str().map_err(|_| ProxyError::InvalidRequest)?;
        for opt in text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            if identity::connection_option_is_forbidden(opt) {
                return Err(ProxyError::InvalidRequest);
            }
            let lower = opt.to_ascii_lowercase();
            if lower != "keep-alive" && lower != "close" {
                hop_by_hop.push(lower);
            }
        }
    }
    let doomed: Vec<String> = req
        .headers
        .keys()
        .map(|k| k.as_str())
        .filter(|name| identity::is_stripped(name))
        .map(str::to_owned)
        .chain(hop_by_hop)
        .collect();
    for name in doomed {
        while req.remove_header(name.as_str()).is_some() {}
    }
    Ok(())
}

/// Writes a complete proxy-generated response (JSON, `no-store`, the request id).
async fn write_json(
    session: &mut Session,
    ctx: &RequestCtx,
    status: StatusCode,
    headers: &[(&'static str, String)],
    body: String,
    close: bool,
) -> Result<(), ProxyError> {
    let written = async {
        let mut resp = ResponseHeader::build(status, Some(4 + headers.len()))?;
        if !body.is_empty() {
            resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
        }
        resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
        resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
        resp.insert_header("x-request-id", ctx.request_id.as_str())?;
        for (name, value) in headers.iter().chain(&ctx.cors_headers) {
            resp.insert_header(*name, value.as_str())?;
        }
        if ctx.cors_route {
            resp.append_header(http::header::VARY, "Origin")?;
        }
        for (name, value) in ctx.security_headers.iter() {
            resp.insert_header(name.clone(), value.clone())?;
        }
        if close {
            resp.insert_header(http::header::CONNECTION, "close")?;
            session.set_keepalive(None);
        }
        session
            .write_response_header(Box::new(resp), body.is_empty())
            .await?;
        if !body.is_empty() {
            session
                .write_response_body(Some(Bytes::from(body)), true)
                .await?;
        }
        Ok::<(), Box<Error>>(())
    };
    written.await.map_err(|error| {
        tracing::debug!(%error, "writing a proxy response failed");
        ProxyError::Internal
    })
}

/// A valid `X-Request-Id` is a UUID; anything else is replaced.
fn request_id(req: &RequestHeader) -> String {
    req.headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| uuid::Uuid::parse_str(v).ok())
        .unwrap_or_else(uuid::Uuid::new_v4)
        .hyphenated()
        .to_string()
}

fn pingora_error(status: u16, why: &'static str) -> Box<Error> {
    Error::explain(ErrorType::HTTPStatus(status), why)
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let chunked = session
            .req_header()
            .headers
            .contains_key(http::header::TRANSFER_ENCODING);
        crate::conn::head_complete(session.as_downstream().stream(), chunked);
        ctx.request_id = request_id(session.req_header());
        ctx.security_headers = Arc::clone(&self.security_headers);
        ctx.in_flight = Some(crate::metrics::InFlight::start(&self.metrics.in_flight));
        ctx.trace = Some(crate::trace::TraceParent::continue_or_start(
            session
                .req_header()
                .headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok()),
        ));
        // Only shorten an enabled keep-alive: pingora turns it off for requests that must not be
        // followed on the same connection (e.g. both Content-Length and Transfer-Encoding, whose
        // Content-Length it has already dropped), and that must stay off (R-HTTP-1 fallback).
        if session.get_keepalive().is_some() {
            session.set_keepalive(Some(self.keepalive_idle.as_secs()));
        }
        // Each body read waits at most this long (slow-body clients, R-HTTP).
        session.set_read_timeout(Some(self.body_timeouts.idle));
        Ok(())
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        match self.admit(session, ctx).await {
            Ok(Admit::Forward) => Ok(false),
            Ok(Admit::Answered) => Ok(true),
            Err(e) => self.reject(session, ctx, &e).await,
        }
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if let Some(why) = crate::conn::body_violation(session.as_downstream().stream()) {
            // Failing here aborts the upstream request before the body completes (R-HTTP-1).
            self.metrics
                .framing_rejections
                .with_label_values(&["invalid_request"])
                .inc();
            return Err(pingora_error(400, why));
        }
        if let Some(b) = body {
            let started = *ctx.body_started.get_or_insert_with(std::time::Instant::now);
            ctx.body_bytes += b.len() as u64;
            let t = &self.body_timeouts;
            let elapsed = started.elapsed();
            if t.min_rate_bytes_per_sec > 0 && elapsed > t.grace {
                let rate = ctx.body_bytes as f64 / elapsed.as_secs_f64();
                if rate < t.min_rate_bytes_per_sec as f64 {
                    return Err(pingora_error(408, "request body below the minimum rate"));
                }
            }
            if ctx.body_bytes > ctx.body_limit {
                self.metrics.body_limit_rejections.inc();
                // Failing here aborts the upstream request: the upstream never sees a complete body.
                return Err(pingora_error(413, "request body over the route limit"));
            }
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let Handler::Route(i) = ctx.handler else {
            return Err(pingora_error(502, "no route"));
        };
        let pool = &self.pools[self.routes.routes()[i].upstream];
        let Some(addr) = pool.select() else {
            return Err(Error::explain(ErrorType::ConnectNoRoute, "no healthy peer"));
        };
        ctx.upstream_started = Some(std::time::Instant::now());
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.connection_timeout = Some(pool.connect_timeout);
        peer.options.read_timeout = Some(pool.read_timeout);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        up: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        // R-JWT-8: the upstream gets identity headers, never the token.
        while up.remove_header(&http::header::AUTHORIZATION).is_some() {}
        up.insert_header("x-request-id", ctx.request_id.as_str())?;
        if let Some(ip) = ctx.client_ip {
            up.insert_header("x-forwarded-for", ip.to_string())?;
        }
        up.insert_header("x-forwarded-proto", "http")?;
        if let Some(trace) = &ctx.trace {
            up.insert_header("traceparent", trace.as_str())?;
        }
        if let Some(host) = &ctx.host {
            up.insert_header("x-forwarded-host", host.as_str())?;
        }
        let (Some(claims), Handler::Route(i)) = (&ctx.identity, ctx.handler) else {
            return Ok(());
        };
        let route = &self.routes.routes()[i];
        let method = session.req_header().method.as_str().to_owned();
        let path = session.req_header().uri.path().to_owned();
        // External users are namespaced by issuer, so `alice` of an identity provider can never act
        // as the proxy's own user `alice` upstream.
        let user_id = match &ctx.identity_issuer {
            None => claims.sub.clone(),
            Some(issuer) => format!("{issuer}:{}", claims.sub),
        };
        let assertion = self
            .asserter
            .mint(
                &route.upstream_name,
                &user_id,
                &claims.email,
                &claims.roles,
                &claims.jti,
                &method,
                &path,
                unix_now(),
            )
            .map_err(|_| pingora_error(500, "minting the identity assertion failed"))?;
        up.insert_header("x-user-id", user_id.as_str())?;
        if let Some(issuer) = &ctx.identity_issuer {
            up.insert_header("x-user-issuer", issuer.as_str())?;
        }
        up.insert_header("x-user-email", claims.email.as_str())?;
        up.insert_header("x-user-roles", claims.roles.join(","))?;
        up.insert_header("x-identity-assertion", assertion)?;
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        // No version strings towards clients (ASVS 4.0.3 V14.3.3).
        while resp.remove_header(&http::header::SERVER).is_some() {}
        for (name, value) in self.security_headers.iter() {
            if !resp.headers.contains_key(name) {
                resp.insert_header(name.clone(), value.clone())?;
            }
        }
        if ctx.cors_route {
            // The policy, not the upstream, decides CORS on this route.
            let upstream_cors: Vec<String> = resp
                .headers
                .keys()
                .map(|k| k.as_str())
                .filter(|k| k.starts_with("access-control-"))
                .map(str::to_owned)
                .collect();
            for name in upstream_cors {
                while resp.remove_header(name.as_str()).is_some() {}
            }
            for (name, value) in &ctx.cors_headers {
                resp.insert_header(*name, value.as_str())?;
            }
            resp.append_header(http::header::VARY, "Origin")?;
        }
        resp.insert_header("x-request-id", ctx.request_id.as_str())?;
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if let (Some(started), Some(upstream)) =
            (ctx.upstream_started.take(), self.upstream_name(ctx))
        {
            self.metrics
                .upstream_duration
                .with_label_values(&[upstream])
                .observe(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let err = match e.etype() {
            ErrorType::HTTPStatus(413) => ProxyError::PayloadTooLarge {
                max_bytes: ctx.body_limit,
            },
            ErrorType::HTTPStatus(408) => ProxyError::RequestTimeout,
            ErrorType::HTTPStatus(400) => ProxyError::InvalidRequest,
            ErrorType::ReadTimedout if e.esource() == &ErrorSource::Downstream => {
                ProxyError::RequestTimeout
            }
            ErrorType::ConnectTimedout
            | ErrorType::ConnectRefused
            | ErrorType::ConnectNoRoute
            | ErrorType::ConnectError
            | ErrorType::TLSHandshakeFailure => ProxyError::BadGateway,
            ErrorType::ReadTimedout | ErrorType::WriteTimedout
                if e.esource() == &ErrorSource::Upstream =>
            {
                ProxyError::GatewayTimeout
            }
            _ => match e.esource() {
                ErrorSource::Upstream => ProxyError::BadGateway,
                ErrorSource::Downstream => ProxyError::InvalidRequest,
                _ => ProxyError::Internal,
            },
        };
        if matches!(err, ProxyError::BadGateway | ProxyError::GatewayTimeout) {
            if let Some(upstream) = self.upstream_name(ctx) {
                self.metrics
                    .upstream_errors
                    .with_label_values(&[upstream])
                    .inc();
            }
        }
        let downstream_gone = e.esource() == &ErrorSource::Downstream
            && matches!(
                e.etype(),
                ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed
            );
        // A 1xx (e.g. the upstream's 100 Continue) is not a final answer: the 413/502 can still follow.
        let final_written = session
            .response_written()
            .is_some_and(|r| !r.status.is_informational());
        let code = if downstream_gone || final_written {
            0
        } else {
            let r = err.response(&self.realm);
            let _ = write_json(session, ctx, r.status, &r.headers, r.body, true).await;
            if matches!(err, ProxyError::PayloadTooLarge { .. }) {
                drain_briefly(session).await;
            }
            r.status.as_u16()
        };
        if !matches!(err, ProxyError::PayloadTooLarge { .. }) && code != 0 {
            tracing::warn!(request_id = %ctx.request_id, error = %e, "proxying failed");
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// A client that hangs up mid-request is routine, not an error worth a log line per request.
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, error: &Error) -> bool {
        error.esource() == &ErrorSource::Downstream
            && matches!(
                error.etype(),
                ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
            )
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let body_done = !has_body(session.req_header()) || session.is_body_done();
        crate::conn::request_done(session.as_downstream().stream(), body_done);
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let route = self.route_label(ctx);
        let method = bounded_method(&session.req_header().method);
        let elapsed = ctx.started.elapsed();
        if self.request_metrics {
            self.metrics
                .requests
                .with_label_values(&[route, method, status_class(status)])
                .inc();
            self.metrics
                .request_duration
                .with_label_values(&[route])
                .observe(elapsed.as_secs_f64());
        }
        self.access_log.record(&crate::access_log::AccessEntry {
            request_id: &ctx.request_id,
            trace_id: ctx.trace.as_ref().map_or("-", |t| t.trace_id()),
            route,
            upstream: self.upstream_name(ctx).unwrap_or("-"),
            method,
            status,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            auth: ctx.auth,
            client: ctx.client_ip,
        });
    }
}
