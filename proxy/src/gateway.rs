//! `Gateway`: the only `ProxyHttp` implementation, and nothing but the phase table of `lib.rs`. Each
//! phase method is a short list of calls into stages that do not know pingora's `Session`
//! (`policy::*`, `tokens::authn`, `login::*`, `http::body::BodyMeter`), and every synthetic answer
//! goes through `http::respond`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::cache::key::HashBinary;
use pingora::cache::{CacheKey, CacheMeta, RespCacheable};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};

use crate::clock::SharedClock;
use crate::error::ProxyError;
use crate::http::body::{self, BodyTimeouts};
use crate::http::ctx::RequestCtx;
use crate::http::respond::{self, Synthetic};
use crate::http::upstream::Target;
use crate::http::{conn, headers, pingora_error};
use crate::login::flow::LoginFlow;
use crate::login::logout::Logout;
use crate::login::SessionsConfig;
use crate::obs::access_log::AccessLog;
use crate::obs::metrics::{InFlight, Metrics};
use crate::obs::trace::TraceParent;
use crate::policy::client::IpNet;
use crate::policy::routing::RouteTable;
use crate::tokens::assertion::Asserter;
use crate::tokens::authn::Authenticator;

/// Where the public keys of own tokens are published when they are signed with EdDSA (RFC 8414 style
/// well-known path; the file is a JWKS, RFC 7517).
pub(crate) const JWKS_PATH: &str = "/.well-known/jwks.json";

mod admission;
pub(crate) mod caching;
mod endpoints;
mod finish;
mod peers;
pub(crate) mod websocket;

use self::admission::Admit;
pub(crate) use self::endpoints::EndpointMetrics;

/// Everything the gateway needs, built once from `Config` in `lib.rs`.
pub(crate) struct Gateway {
    pub(crate) routes: RouteTable<Target>,
    /// Request metrics of the proxy's own endpoints and of refusals before a route.
    pub(crate) endpoint_metrics: EndpointMetrics,
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
    pub(crate) websocket: crate::http::body::WebSocketLimits,
    pub(crate) security_headers: Arc<Vec<(http::HeaderName, http::HeaderValue)>>,
    pub(crate) clock: SharedClock,
    /// The edge cache, when any route has `[routes.cache]`.
    pub(crate) cache: Option<caching::EdgeCache>,
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
        ctx.request_id = crate::http::ctx::request_id(req);
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
        if session.was_upgraded() {
            return self.websocket_bytes(ctx, chunk.as_ref(), true);
        }
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
        let Some(dest) = ctx.dest() else {
            return Err(Error::explain(ErrorType::ConnectNoRoute, "no route"));
        };
        let pool = &dest.pool;
        let addr = pool
            .select(ctx.connect_retry)
            .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no healthy peer"))?;
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.connection_timeout = Some(pool.connect_timeout);
        peer.options.read_timeout = Some(pool.read_timeout);
        peer.options.idle_timeout = Some(pool.idle_timeout);
        self.websocket_peer(ctx, &mut peer);
        ctx.upstream_started = Some(Instant::now());
        Ok(Box::new(peer))
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if !reused {
            peers::connected(peer, ctx);
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut RequestCtx,
        e: Box<Error>,
    ) -> Box<Error> {
        peers::connect_failed(&session.req_header().method, peer, ctx, e)
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        up: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let identity = match (&ctx.caller, ctx.dest()) {
            (Some(caller), Some(dest)) => {
                let req = session.req_header();
                let headers = self
                    .asserter
                    .identity(
                        caller,
                        &dest.name,
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
                host: ctx.host.as_ref(),
                traceparent: ctx.trace.as_ref().map(TraceParent::as_str),
                identity,
                version: ctx.version_header(),
            },
        )
    }

    fn request_cache_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        self.enable_cache(session, ctx);
        Ok(())
    }

    fn cache_key_callback(
        &self,
        _session: &Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<CacheKey> {
        Self::cache_key(ctx)
    }

    fn response_cache_filter(
        &self,
        _session: &Session,
        resp: &ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<RespCacheable> {
        Ok(Self::cacheable(resp, ctx))
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        _ctx: &mut RequestCtx,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        Self::vary(meta, req)
    }

    /// Stale answers only while revalidating (`stale_while_revalidate_seconds`), never on errors.
    fn should_serve_stale(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
        error: Option<&Error>,
    ) -> bool {
        error.is_none()
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        self.cache_response(session, resp, ctx).await?;
        headers::rewrite_response(
            resp,
            &self.security_headers,
            ctx.version_answer(),
            &ctx.cors,
            &ctx.request_id,
        )
    }

    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Option<Duration>> {
        if session.was_upgraded() {
            self.websocket_bytes(ctx, body.as_ref(), false)?;
        }
        Ok(None)
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if let (Some(started), Some(dest)) = (ctx.upstream_started.take(), ctx.dest()) {
            dest.metrics
                .duration
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
            if let Some(dest) = ctx.dest() {
                dest.metrics.errors.inc();
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
            tracing::warn!(request_id = %ctx.rid(), error = %e, "proxying failed");
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
        self.request_finished(session, ctx);
    }
}
