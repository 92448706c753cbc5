//! `RequestCtx`: per-request state shared across pingora phases (pingora's `CTX`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::http::body::BodyMeter;
use crate::http::respond::{AnswerContext, CorsAnswer};
use crate::http::upstream::{Dest, Target};
use crate::obs::metrics::InFlight;
use crate::obs::trace::TraceParent;
use crate::policy::routing::Route;
use crate::policy::versioning::VersionEntry;
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
}

/// A valid `X-Request-Id` is a UUID; anything else is replaced by a random (v4) one, drawn from the
/// thread's CSPRNG rather than a `getrandom` system call per request.
pub(crate) fn request_id(req: &pingora::http::RequestHeader) -> http::HeaderValue {
    use rand::Rng as _;
    let id = req
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| uuid::Uuid::parse_str(v).ok())
        .unwrap_or_else(|| uuid::Builder::from_random_bytes(rand::rng().random()).into_uuid());
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut buf);
    http::HeaderValue::from_str(text).unwrap_or_else(|_| http::HeaderValue::from_static(""))
}

/// The edge cache's part of a request (`gateway::caching`).
#[derive(Debug, Default)]
pub(crate) enum CacheCtx {
    /// The route has no cache, or the request was refused before it mattered.
    #[default]
    None,
    /// Not looked up (`policy::caching::bypass_reason`, or the generation store failed).
    Bypass,
    /// Looked up under this primary key; `storable` is the verdict on the upstream's answer, once
    /// there is one.
    Read {
        primary: String,
        storable: Option<bool>,
    },
    /// An unsafe request: these scopes get new generations again when it answers 2xx.
    Write { scopes: Vec<String> },
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
    /// The peer a connect failed on, once the request is retried on another.
    pub connect_retry: Option<std::net::SocketAddr>,
    /// W3C trace context sent upstream (continued from the client's or started here).
    pub trace: Option<TraceParent>,
    pub cors: CorsAnswer,
    /// The API version resolved on a versioned route (index into its scheme's versions).
    pub api_version: Option<usize>,
    /// What the edge cache does with this request (cached routes only).
    pub cache: CacheCtx,
    /// A WebSocket handshake on a route that allows them: a frame meter per direction.
    pub websocket: Option<Box<crate::policy::websocket::Meters>>,
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
            connect_retry: None,
            trace: None,
            cors: CorsAnswer::default(),
            api_version: None,
            cache: CacheCtx::None,
            websocket: None,
            security_headers,
        }
    }

    /// The request id as text (it is ASCII by construction).
    pub(crate) fn rid(&self) -> &str {
        self.request_id.to_str().unwrap_or_default()
    }

    /// The resolved API version of a versioned route.
    pub(crate) fn version(&self) -> Option<&VersionEntry> {
        let (Handler::Route(r), Some(i)) = (&self.handler, self.api_version) else {
            return None;
        };
        r.versioning.as_ref()?.versions.get(i)
    }

    /// The resolved version's answer headers and the scheme's `Vary` (proxied answers).
    pub(crate) fn version_answer(
        &self,
    ) -> Option<(&[(http::HeaderName, http::HeaderValue)], &http::HeaderValue)> {
        let (Handler::Route(r), Some(i)) = (&self.handler, self.api_version) else {
            return None;
        };
        let scheme = r.versioning.as_ref()?;
        Some((&scheme.versions.get(i)?.answer_headers, &scheme.vary))
    }

    /// The version header the upstream gets: the scheme's header name and the resolved version.
    pub(crate) fn version_header(&self) -> Option<(&http::HeaderName, &http::HeaderValue)> {
        let (Handler::Route(r), Some(i)) = (&self.handler, self.api_version) else {
            return None;
        };
        let scheme = r.versioning.as_ref()?;
        Some((&scheme.header, &scheme.versions.get(i)?.value))
    }

    /// Where the request goes: the resolved version's own pool if its scheme names one, else the
    /// route's.
    pub(crate) fn dest(&self) -> Option<&Dest> {
        let Handler::Route(r) = &self.handler else {
            return None;
        };
        let by_version = self
            .api_version
            .and_then(|i| r.target.versions.get(i))
            .and_then(Option::as_ref);
        Some(by_version.unwrap_or(&r.target.dest))
    }

    /// What this request's synthetic answers share.
    pub(crate) fn answer(&self) -> AnswerContext<'_> {
        AnswerContext {
            request_id: &self.request_id,
            cors: &self.cors,
            security_headers: &self.security_headers,
            version_headers: self.version().map_or(&[], |v| &v.answer_headers),
        }
    }
}
