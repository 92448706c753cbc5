//! `Gateway`: the only `ProxyHttp` implementation, and nothing but the phase table of `lib.rs`. Each
//! phase method is a short list of calls into stages that do not know pingora's `Session`
//! (`policy::*`, `tokens::authn`, `login::*`, `http::body::BodyMeter`), and every synthetic answer
//! goes through `http::respond`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, StatusCode};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};

use crate::clock::SharedClock;
use crate::error::ProxyError;
use crate::http::body::{self, BodyTimeouts};
use crate::http::ctx::{Handler, RequestCtx};
use crate::http::respond::{self, Synthetic};
use crate::http::upstream::Pool;
use crate::http::{conn, framing, headers, pingora_error};
use crate::login::flow::{LoginClient, LoginFlow};
use crate::login::logout::Logout;
use crate::login::SessionsConfig;
use crate::obs::access_log::{AccessEntry, AccessLog};
use crate::obs::metrics::{bounded_method, status_class, InFlight, Metrics};
use crate::obs::trace::TraceParent;
use crate::policy::client::{client_ip, IpNet};
use crate::policy::cors::{decide_request, Decision};
use crate::policy::routing::{check_path, AuthMode, Route, RouteTable};
use crate::tokens::assertion::Asserter;
use crate::tokens::authn::{AuthFailure, AuthOutcome, Authenticator, Credentials};

/// Where the public keys of own tokens are published when they are signed with EdDSA (RFC 8414 style
/// well-known path; the file is a JWKS, RFC 7517).
pub(crate) const JWKS_PATH: &str = "/.well-known/jwks.json";

/// Everything the gateway needs, built once from `Config` in `lib.rs`.
pub(crate) struct Gateway {
    pub(crate) routes: RouteTable<Arc<Pool>>,
    pub(crate) authn: Arc<Authenticator>,
    pub(crate) login: LoginFlow,
    pub(crate) logout: Logout,
    pub(crate) asserter: Arc<Asserter>,
    pub(crate) paths: SessionsConfig,
    pub(crate) realm: String,
    pub(crate) trusted_proxies: Vec<IpNet>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) keepalive_idle: Duration,
    pub(crate) access_log: AccessLog,
    pub(crate) request_metrics: bool,
    pub(crate) body_timeouts: BodyTimeouts,
    pub(crate) security_headers: Arc<Vec<(http::HeaderName, http::HeaderValue)>>,
    pub(crate) clock: SharedClock,
}

/// What `admit` decided.
enum Admit {
    /// Forward to the route's upstream.
    Forward,
    /// The proxy answers itself.
    Answer(Synthetic),
}

/// The proxy's own endpoints.
enum Endpoint {
    Jwks,
    Login,
    Logout,
    LogoutAll,
}

impl Gateway {
    /// The request filter's work, in order (see the phase table in `lib.rs`).
    async fn admit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Admit, ProxyError> {
        if let Some(h1) = session.as_downstream().as_http1() {
            framing::check_raw_head(&h1.get_headers_raw_bytes())?;
        }
        framing::check_head(session.req_header())?;
        self.resolve_client(session, ctx);
        headers::strip_inbound(session.req_header_mut())?;
        let req = session.req_header();
        if req.method == Method::TRACE || req.method == Method::CONNECT {
            return Err(ProxyError::MethodNotAllowed {
                allow: crate::error::FORWARDABLE_METHODS.into(),
            });
        }
        let path = req.uri.path();
        check_path(path).map_err(|_| ProxyError::InvalidPath)?;
        if let Some(endpoint) = self.endpoint(path) {
            return self
                .own_endpoint(endpoint, session, ctx)
                .await
                .map(Admit::Answer);
        }
        let route = Arc::clone(self.routes.route(path).ok_or(ProxyError::NotFound)?);
        ctx.handler = Handler::Route(Arc::clone(&route));
        self.route_checks(&route, session.req_header(), ctx).await
    }

    /// A route's checks: CORS, methods, the declared body, authentication.
    async fn route_checks(
        &self,
        route: &Route<Arc<Pool>>,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<Admit, ProxyError> {
        if let Some(policy) = &route.cors {
            ctx.cors.route = true;
            match decide_request(policy, &req.method, &req.headers, &route.methods) {
                Decision::NotCors | Decision::DisallowedSafe => {}
                Decision::Allowed(h) => ctx.cors.headers = h,
                Decision::PreflightAllowed(h) => {
                    ctx.cors.headers = h;
                    return Ok(Admit::Answer(Synthetic::empty(StatusCode::NO_CONTENT)));
                }
                Decision::RefusedUnsafe => {
                    self.metrics.cors_rejections.inc();
                    return Err(ProxyError::OriginNotAllowed);
                }
                Decision::PreflightRefused => {
                    self.metrics.cors_rejections.inc();
                    return Err(ProxyError::PreflightRefused);
                }
            }
        }
        if !route.methods.contains(&req.method) {
            return Err(ProxyError::MethodNotAllowed {
                allow: route.allow.clone(),
            });
        }
        ctx.body.limit = route.max_body_bytes;
        body::check_declared(req, route.max_body_bytes)?;
        if route.auth == AuthMode::None {
            return Ok(Admit::Forward);
        }
        let creds = Credentials {
            headers: &req.headers,
            query: req.uri.query(),
        };
        match self.authn.authenticate(&creds, self.clock.now()).await {
            Ok(caller) => {
                ctx.auth = AuthOutcome::Ok;
                ctx.caller = Some(caller);
            }
            Err(AuthFailure::Missing) if route.auth == AuthMode::Optional => {
                ctx.auth = AuthOutcome::Anonymous;
            }
            Err(f) => {
                ctx.auth = f.outcome();
                return Err(f.error());
            }
        }
        Ok(Admit::Forward)
    }

    fn endpoint(&self, path: &str) -> Option<Endpoint> {
        if path == JWKS_PATH && self.authn.tokens.own.publishes_keys() {
            Some(Endpoint::Jwks)
        } else if path == self.paths.login_path {
            Some(Endpoint::Login)
        } else if path == self.paths.logout_path {
            Some(Endpoint::Logout)
        } else if path == self.paths.logout_all_path {
            Some(Endpoint::LogoutAll)
        } else {
            None
        }
    }

    /// JWKS, login, logout and logout-all: POST only (GET for the JWKS), answered here.
    async fn own_endpoint(
        &self,
        endpoint: Endpoint,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Synthetic, ProxyError> {
        let (handler, method, max_body) = match endpoint {
            Endpoint::Jwks => (Handler::Jwks, Method::GET, 0),
            Endpoint::Login => (Handler::Login, Method::POST, self.paths.max_body_bytes),
            Endpoint::Logout => (Handler::Logout, Method::POST, 0),
            Endpoint::LogoutAll => (Handler::LogoutAll, Method::POST, 0),
        };
        ctx.handler = handler;
        if session.req_header().method != method {
            return Err(ProxyError::MethodNotAllowed {
                allow: method.as_str().into(),
            });
        }
        ctx.body.limit = max_body;
        body::check_declared(session.req_header(), max_body)?;
        let now = self.clock.now_ms();
        match endpoint {
            Endpoint::Jwks => {
                let jwks = self.authn.tokens.own.jwks(now.secs()).unwrap_or_default();
                let mut answer = Synthetic::json(StatusCode::OK, jwks);
                // Verifiers cache the set; five minutes bounds how long a retired key stays trusted.
                answer.headers = vec![("cache-control", "public, max-age=300".to_owned())];
                Ok(answer)
            }
            Endpoint::Login => {
                let body = body::read_capped(session, &mut ctx.body, &self.body_timeouts).await?;
                let client = LoginClient {
                    ip: ctx.client_ip,
                    request_id: &ctx.request_id,
                };
                let minted = self.login.run(&body, &client, now).await?;
                Ok(Synthetic::json(StatusCode::OK, self.login.answer(&minted)))
            }
            Endpoint::Logout | Endpoint::LogoutAll => {
                let req = session.req_header();
                let creds = Credentials {
                    headers: &req.headers,
                    query: req.uri.query(),
                };
                let all = matches!(endpoint, Endpoint::LogoutAll);
                let verified = if all {
                    self.authn.authenticate(&creds, now.secs()).await
                } else {
                    self.authn.verify(&creds, now.secs()).await
                };
                let caller = verified.map_err(|f| {
                    ctx.auth = f.outcome();
                    f.error()
                })?;
                ctx.auth = AuthOutcome::Ok;
                if all {
                    self.logout.all(&caller, now.secs()).await?;
                } else {
                    self.logout.one(&caller, now.secs()).await?;
                }
                Ok(Synthetic::empty(StatusCode::NO_CONTENT))
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
        let headers = &session.req_header().headers;
        let xff: Vec<&str> = if self.trusted_proxies.is_empty() {
            Vec::new()
        } else {
            headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect()
        };
        ctx.client_ip = Some(client_ip(peer, &xff, &self.trusted_proxies));
        ctx.host = headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
    }

    /// Writes the answer for `err`; the one place refusals become responses.
    async fn reject(&self, session: &mut Session, ctx: &mut RequestCtx, err: &ProxyError) {
        self.count_refusal(err);
        // An early answer must not leave unread body bytes on a reused connection (R-HTTP-3).
        let close = err.closes_connection()
            || (body::has_body(session.req_header()) && !session.is_body_done());
        let answer = Synthetic::refusal(err, &self.realm, close);
        let _ = respond::write(session, answer, &ctx.answer()).await;
        if close && !session.is_body_done() {
            body::drain_briefly(session).await;
        }
    }

    fn count_refusal(&self, err: &ProxyError) {
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
    }
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

/// The pingora error that aborts a request whose body the meter refused (the meter keeps the
/// `ProxyError` itself for `fail_to_proxy`).
fn body_refused(err: &ProxyError) -> Box<Error> {
    Error::explain(
        ErrorType::HTTPStatus(err.status().as_u16()),
        "request body refused",
    )
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(Arc::clone(&self.security_headers))
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let req = session.req_header();
        let chunked = req.headers.contains_key(http::header::TRANSFER_ENCODING);
        ctx.request_id = request_id(req);
        ctx.trace = Some(TraceParent::continue_or_start(
            req.headers.get("traceparent").and_then(|v| v.to_str().ok()),
        ));
        conn::head_complete(session.as_downstream().stream(), chunked);
        ctx.in_flight = Some(InFlight::start(&self.metrics.in_flight));
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
            Ok(Admit::Answer(answer)) => {
                if let Err(e) = respond::write(session, answer, &ctx.answer()).await {
                    self.reject(session, ctx, &e).await;
                }
                Ok(true)
            }
            Err(e) => {
                self.reject(session, ctx, &e).await;
                Ok(true)
            }
        }
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        chunk: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        // Failing here aborts the upstream request before the body completes (R-HTTP-1).
        if conn::body_violation(session.as_downstream().stream()).is_some() {
            self.metrics
                .framing_rejections
                .with_label_values(&["invalid_request"])
                .inc();
            return Err(body_refused(&ctx.body.refuse(ProxyError::InvalidRequest)));
        }
        if let Some(b) = chunk {
            if let Err(e) = ctx.body.feed(b.len(), Instant::now(), &self.body_timeouts) {
                self.count_refusal(&e);
                return Err(body_refused(&e));
            }
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let Handler::Route(route) = &ctx.handler else {
            return Err(Error::explain(ErrorType::ConnectNoRoute, "no route"));
        };
        let pool = &route.pool;
        let addr = pool
            .select()
            .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no healthy peer"))?;
        ctx.upstream_started = Some(Instant::now());
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
        let identity = match (&ctx.caller, &ctx.handler) {
            (Some(caller), Handler::Route(route)) => {
                let req = session.req_header();
                let headers = self
                    .asserter
                    .identity(
                        caller,
                        &route.upstream,
                        req.method.as_str(),
                        req.uri.path(),
                        self.clock.now(),
                    )
                    .map_err(|_| {
                        Error::explain(
                            ErrorType::InternalError,
                            "minting the identity assertion failed",
                        )
                    })?;
                Some(headers)
            }
            _ => None,
        };
        headers::forward(
            up,
            headers::Forwarded {
                request_id: &ctx.request_id,
                client: ctx.client_ip,
                host: ctx.host.as_deref(),
                traceparent: ctx.trace.as_ref().map(TraceParent::as_str),
                identity,
            },
        )
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        headers::rewrite_response(resp, &self.security_headers, &ctx.cors, &ctx.request_id)
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if let (Some(started), Some(upstream)) =
            (ctx.upstream_started.take(), ctx.handler.upstream())
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
        let err = ctx
            .body
            .take_refusal()
            .unwrap_or_else(|| ProxyError::from_pingora(e));
        if matches!(err, ProxyError::BadGateway | ProxyError::GatewayTimeout) {
            if let Some(upstream) = ctx.handler.upstream() {
                self.metrics
                    .upstream_errors
                    .with_label_values(&[upstream])
                    .inc();
            }
        }
        // A 1xx (e.g. the upstream's 100 Continue) is not a final answer: the 413/502 can still follow.
        let final_written = session
            .response_written()
            .is_some_and(|r| !r.status.is_informational());
        if pingora_error::downstream_gone(e) || final_written {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        let too_large = matches!(err, ProxyError::PayloadTooLarge { .. });
        if !too_large {
            tracing::warn!(request_id = %ctx.request_id, error = %e, "proxying failed");
        }
        let answer = Synthetic::refusal(&err, &self.realm, true);
        let _ = respond::write(session, answer, &ctx.answer()).await;
        if too_large {
            body::drain_briefly(session).await;
        }
        FailToProxy {
            error_code: err.status().as_u16(),
            can_reuse_downstream: false,
        }
    }

    /// A client that hangs up mid-request is routine, not an error worth a log line per request.
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, error: &Error) -> bool {
        pingora_error::downstream_gone(error)
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let body_done = !body::has_body(session.req_header()) || session.is_body_done();
        conn::request_done(session.as_downstream().stream(), body_done);
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let route = ctx.handler.label();
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
        self.access_log.record(&AccessEntry {
            request_id: &ctx.request_id,
            trace_id: ctx.trace.as_ref().map_or("-", TraceParent::trace_id),
            route,
            upstream: ctx.handler.upstream().unwrap_or("-"),
            method,
            status,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            auth: ctx.auth.label(),
            client: ctx.client_ip,
        });
    }
}
