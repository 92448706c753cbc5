//! The request filter's work before anything is forwarded, in the order of the phase table in
//! `lib.rs`: head checks, the client address, inbound stripping, the path, the proxy's own endpoints,
//! then the route's CORS, methods, API version, declared body, authentication and the edge cache's
//! key or invalidation. Refusals are written by
//! [`Gateway::reject`], the one place a `ProxyError` becomes a response.

use std::sync::Arc;

use http::{Method, StatusCode};
use pingora::http::RequestHeader;
use pingora::proxy::Session;

use super::Gateway;
use crate::error::ProxyError;
use crate::http::body;
use crate::http::ctx::{Handler, RequestCtx};
use crate::http::respond::{self, Synthetic};
use crate::http::upstream::Target;
use crate::http::{framing, headers};
use crate::policy::client::client_ip;
use crate::policy::cors::{decide_request, Decision};
use crate::policy::routing::{check_path, AuthMode, Route};
use crate::policy::versioning::Versioning;
use crate::tokens::authn::{AuthFailure, AuthOutcome, Credentials};

/// What `admit` decided.
pub(super) enum Admit {
    /// Forward to the route's upstream.
    Forward,
    /// The proxy answers itself.
    Answer(Synthetic),
}

impl Gateway {
    /// The request filter's work, in order (see the phase table in `lib.rs`).
    pub(super) async fn admit(
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
        let admit = self.route_checks(&route, session.req_header(), ctx).await?;
        if matches!(admit, Admit::Forward) {
            self.websocket_admission(&route, session, ctx);
        }
        Ok(admit)
    }

    /// A route's checks: CORS, methods, the declared body, authentication.
    async fn route_checks(
        &self,
        route: &Route<Target>,
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
        if let Some(scheme) = &route.versioning {
            self.resolve_version(route, scheme, &req.headers, ctx)?;
        }
        ctx.body.limit = route.max_body_bytes;
        body::check_declared(req, route.max_body_bytes)?;
        if route.auth != AuthMode::None {
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
        }
        // After authentication: a revoked token never reaches a cached answer.
        if let Some(cache) = &route.cache {
            self.cache_admission(route, cache, req, ctx).await?;
        }
        Ok(Admit::Forward)
    }

    /// The request's API version on a versioned route, counted; a refused one answers here, before
    /// authentication and any upstream work (a brownout's 410 still carries the version's headers).
    fn resolve_version(
        &self,
        route: &Route<Target>,
        scheme: &Versioning,
        headers: &http::HeaderMap,
        ctx: &mut RequestCtx,
    ) -> Result<(), ProxyError> {
        let (label, result) = match scheme.resolve(headers, self.clock.now()) {
            Ok(i) => {
                ctx.api_version = Some(i);
                (i, Ok(()))
            }
            Err(refusal) => {
                ctx.api_version = refusal.version;
                (
                    refusal.label.unwrap_or_else(|| scheme.invalid_label()),
                    Err(refusal.error),
                )
            }
        };
        if self.request_metrics {
            if let Some(c) = route.target.api_requests.get(label) {
                c.inc();
            }
        }
        result
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
        ctx.host = headers.get(http::header::HOST).cloned();
    }

    /// Writes the answer for `err`; the one place refusals become responses.
    pub(super) async fn reject(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        err: &ProxyError,
    ) {
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

    pub(super) fn count_refusal(&self, err: &ProxyError) {
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
