//! `RequestCtx`: per-request state shared across pingora phases (pingora's `CTX`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::http::body::BodyMeter;
use crate::http::respond::{AnswerContext, CorsAnswer};
use crate::http::upstream::Target;
use crate::obs::metrics::InFlight;
use crate::obs::trace::TraceParent;
use crate::policy::routing::Route;
use crate::tokens::authn::AuthOutcome;
use crate::tokens::Verified;

/// Which part of the proxy answered or forwarded the request; the `route` metric label.
#[derive(Debug, Clone, Default)]
pub(crate) enum Handler {
    /// Refused before a route was chosen (bad path, framing).
    #[default]
    None,
    /// A configured route, bound to its pool and metrics.
    Route(Arc<Route<Target>>),
    Login,
    Logout,
    LogoutAll,
    /// `GET /.well-known/jwks.json` (EdDSA keys of own tokens).
    Jwks,
}

impl Handler {
    /// The `route` label: the route's name, or the endpoint's.
    pub(crate) fn label(&self) -> &str {
        match self {
            Self::Route(r) => &r.name,
            Self::Login => "login",
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::Jwks => "jwks",
            Self::None => "none",
        }
    }

    /// The upstream the request goes to, when it has a route.
    pub(crate) fn upstream(&self) -> Option<&str> {
        match self {
            Self::Route(r) => Some(&r.upstream),
            _ => None,
        }
    }
}

pub(crate) struct RequestCtx {
    /// A UUID: the client's, or made here. Kept as the header value it is sent as.
    pub request_id: http::HeaderValue,
    pub started: Instant,
    pub client_ip: Option<IpAddr>,
    pub handler: Handler,
    /// The verified caller, on authenticated requests.
    pub caller: Option<Verified>,
    pub auth: AuthOutcome,
    pub body: BodyMeter,
    /// `Host` as the client sent it, for `X-Forwarded-Host`.
    pub host: Option<http::HeaderValue>,
    /// Holds the in-flight gauge up while the request lives.
    pub in_flight: Option<InFlight>,
    /// When a peer was chosen, for `edge_proxy_upstream_duration_seconds`.
    pub upstream_started: Option<Instant>,
    /// W3C trace context sent upstream (continued from the client's or started here).
    pub trace: Option<TraceParent>,
    pub cors: CorsAnswer,
    /// Security headers for proxy-generated answers (shared with the gateway).
    pub security_headers: Arc<Vec<(http::HeaderName, http::HeaderValue)>>,
}

impl RequestCtx {
    pub(crate) fn new(security_headers: Arc<Vec<(http::HeaderName, http::HeaderValue)>>) -> Self {
        Self {
            request_id: http::HeaderValue::from_static(""),
            started: Instant::now(),
            client_ip: None,
            handler: Handler::None,
            caller: None,
            auth: AuthOutcome::NotChecked,
            body: BodyMeter::default(),
            host: None,
            in_flight: None,
            upstream_started: None,
            trace: None,
            cors: CorsAnswer::default(),
            security_headers,
        }
    }

    /// The request id as text (it is ASCII by construction).
    pub(crate) fn rid(&self) -> &str {
        self.request_id.to_str().unwrap_or_default()
    }

    /// What this request's synthetic answers share.
    pub(crate) fn answer(&self) -> AnswerContext<'_> {
        AnswerContext {
            request_id: &self.request_id,
            cors: &self.cors,
            security_headers: &self.security_headers,
        }
    }
}
