//! The proxy's own endpoints, answered in the request filter: the JWKS of own keys, login, logout
//! and logout-all. Each reads what it needs from the request and calls its stage. Their request
//! metrics (and those of refusals before any route) are resolved once, in `EndpointMetrics`.

use http::{Method, StatusCode};
use pingora::http::RequestHeader;
use pingora::proxy::Session;

use super::{Gateway, JWKS_PATH};
use crate::clock::UnixSecs;
use crate::error::ProxyError;
use crate::http::body;
use crate::http::ctx::{Handler, RequestCtx};
use crate::http::respond::Synthetic;
use crate::login::flow::LoginClient;
use crate::obs::metrics::{Metrics, RequestMetrics};
use crate::tokens::authn::{AuthOutcome, Credentials};

/// Request metrics of everything that is not a route.
pub(crate) struct EndpointMetrics {
    login: RequestMetrics,
    logout: RequestMetrics,
    logout_all: RequestMetrics,
    jwks: RequestMetrics,
    none: RequestMetrics,
}

impl EndpointMetrics {
    pub(crate) fn new(m: &Metrics) -> Self {
        Self {
            login: m.for_handler(Handler::Login.label()),
            logout: m.for_handler(Handler::Logout.label()),
            logout_all: m.for_handler(Handler::LogoutAll.label()),
            jwks: m.for_handler(Handler::Jwks.label()),
            none: m.for_handler(Handler::None.label()),
        }
    }

    pub(super) fn of(&self, h: &Handler) -> &RequestMetrics {
        match h {
            Handler::Login => &self.login,
            Handler::Logout => &self.logout,
            Handler::LogoutAll => &self.logout_all,
            Handler::Jwks => &self.jwks,
            Handler::None | Handler::Route(_) => &self.none,
        }
    }
}

/// The proxy's own endpoints.
pub(super) enum Endpoint {
    Jwks,
    Login,
    Logout,
    LogoutAll,
}

impl Gateway {
    pub(super) fn endpoint(&self, path: &str) -> Option<Endpoint> {
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
    pub(super) async fn own_endpoint(
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
            Endpoint::Jwks => Ok(self.jwks(now.secs())),
            Endpoint::Login => {
                let body = body::read_capped(session, &mut ctx.body, &self.body_timeouts).await?;
                let client = LoginClient {
                    ip: ctx.client_ip,
                    request_id: ctx.rid(),
                };
                let minted = self.login.run(&body, &client, now).await?;
                Ok(Synthetic::json(StatusCode::OK, self.login.answer(&minted)))
            }
            Endpoint::Logout => {
                self.logout(session.req_header(), ctx, false, now.secs())
                    .await
            }
            Endpoint::LogoutAll => {
                self.logout(session.req_header(), ctx, true, now.secs())
                    .await
            }
        }
    }

    /// The JWKS of own EdDSA keys. Verifiers cache the set; five minutes bounds how long a retired
    /// key stays trusted.
    fn jwks(&self, now: UnixSecs) -> Synthetic {
        let jwks = self.authn.tokens.own.jwks(now).unwrap_or_default();
        let mut answer = Synthetic::json(StatusCode::OK, jwks);
        answer.headers = vec![("cache-control", "public, max-age=300".to_owned())];
        answer
    }

    /// Logout verifies the token only (an already revoked one still gets 204, RFC 7009 section
    /// 2.2); logout-all needs a live session.
    async fn logout(
        &self,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
        all: bool,
        now: UnixSecs,
    ) -> Result<Synthetic, ProxyError> {
        let creds = Credentials {
            headers: &req.headers,
            query: req.uri.query(),
        };
        let verified = if all {
            self.authn.authenticate(&creds, now).await
        } else {
            self.authn.verify(&creds, now).await
        };
        let caller = verified.map_err(|f| {
            ctx.auth = f.outcome();
            f.error()
        })?;
        ctx.auth = AuthOutcome::Ok;
        if all {
            self.logout.all(&caller, now).await?;
        } else {
            self.logout.one(&caller, now).await?;
        }
        Ok(Synthetic::empty(StatusCode::NO_CONTENT))
    }
}
