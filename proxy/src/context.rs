//! `RequestCtx`: per-request state shared across pingora phases (pingora's `CTX`).

use std::net::IpAddr;
use std::time::Instant;

use crate::auth::AccessClaims;

/// Which part of the proxy answered or forwarded the request; the `route` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// Refused before a route was chosen (bad path, framing).
    None,
    /// A configured route (index into the route table).
    Route(usize),
    Login,
    Logout,
    LogoutAll,
    /// `GET /.well-known/jwks.json` (EdDSA keys of own tokens).
    Jwks,
}

pub struct RequestCtx {
    pub request_id: String,
    pub started: Instant,
    pub client_ip: Option<IpAddr>,
    pub handler: Handler,
    /// The verified caller, on authenticated requests.
    pub identity: Option<AccessClaims>,
    /// The external issuer's name when the token was not minted here.
    pub identity_issuer: Option<String>,
    /// When the first body bytes arrived (for the minimum-rate check).
    pub body_started: Option<Instant>,
    /// Body bytes seen so far and the limit that applies.
    pub body_bytes: u64,
    pub body_limit: u64,
    /// `Host` as the client sent it, for `X-Forwarded-Host`.
    pub host: Option<String>,
    /// Auth outcome for the access log.
    pub auth: &'static str,
    /// Holds the in-flight gauge up while the request lives.
    pub in_flight: Option<crate::metrics::InFlight>,
    /// When a peer was chosen, for `edge_proxy_upstream_duration_seconds`.
    pub upstream_started: Option<Instant>,
    /// W3C trace context sent upstream (continued from the client's or started here).
    pub trace: Option<crate::trace::TraceParent>,
    /// The route has a CORS policy: every answer carries `Vary: Origin` (R-CORS-4).
    pub cors_route: bool,
    /// CORS headers for an allowed origin, on proxied and proxy-generated answers alike.
    pub cors_headers: Vec<(&'static str, String)>,
    /// Security headers for proxy-generated answers (shared with the gateway).
    pub security_headers: std::sync::Arc<Vec<(http::HeaderName, http::HeaderValue)>>,
}

impl RequestCtx {
    pub fn new() -> Self {
        Self {
            request_id: String::new(),
            started: Instant::now(),
            client_ip: None,
            handler: Handler::None,
            identity: None,
            identity_issuer: None,
            body_started: None,
            body_bytes: 0,
            body_limit: u64::MAX,
            host: None,
            auth: "-",
            in_flight: None,
            upstream_started: None,
            trace: None,
            cors_route: false,
            cors_headers: Vec::new(),
            security_headers: std::sync::Arc::new(Vec::new()),
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}
