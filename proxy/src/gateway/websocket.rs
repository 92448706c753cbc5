//! WebSocket upgrades on routes with `websocket = true` (issue 18). The handshake is a request like
//! any other: authentication, identity headers and the assertion as usual. A real handshake
//! (`policy::websocket::is_handshake`) then gets an idle timeout in place of the body timeouts and a
//! frame meter per direction, which closes the connection on a frame over
//! `limits.websocket_max_frame_bytes`. Everywhere else pingora's request policy drops the upgrade
//! fields, so no other upgrade (`h2c` included) ever reaches an upstream.

use bytes::Bytes;
use http::Version;
use pingora::proxy::Session;
use pingora::upstreams::peer::{HttpPeer, HttpUpstreamRequestPolicy};
use pingora::{Error, ErrorType};

use super::Gateway;
use crate::http::ctx::RequestCtx;
use crate::http::upstream::Target;
use crate::policy::routing::Route;
use crate::policy::websocket::{is_handshake, Meters};

impl Gateway {
    /// The request filter's last step: a real handshake on a WebSocket route gets its meters, and
    /// its reads wait up to the idle timeout.
    pub(super) fn websocket_admission(
        &self,
        route: &Route<Target>,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) {
        let req = session.req_header();
        if route.websocket
            && is_handshake(&req.method, req.version == Version::HTTP_11, &req.headers)
        {
            ctx.websocket = Some(Box::new(Meters::new(self.websocket.max_frame)));
            session.set_read_timeout(Some(self.websocket.idle));
        }
    }

    /// The peer's side: upgrade fields forwarded for a handshake only, whose upstream reads wait
    /// up to the idle timeout.
    pub(super) fn websocket_peer(&self, ctx: &RequestCtx, peer: &mut HttpPeer) {
        if ctx.websocket.is_some() {
            peer.options.http_upstream_request_policy = HttpUpstreamRequestPolicy::standard();
            peer.options.read_timeout = Some(self.websocket.idle);
        } else {
            peer.options.http_upstream_request_policy = HttpUpstreamRequestPolicy::deny_upgrades();
        }
    }

    /// Upgraded bytes from the client (`to_upstream`) or to it: through their direction's meter.
    /// A frame over the cap, or upgraded bytes without a handshake this proxy admitted, end the
    /// connection.
    pub(super) fn websocket_bytes(
        &self,
        ctx: &mut RequestCtx,
        chunk: Option<&Bytes>,
        to_upstream: bool,
    ) -> pingora::Result<()> {
        let Some(meters) = ctx.websocket.as_mut() else {
            return Error::e_explain(ErrorType::InternalError, "upgraded without a handshake");
        };
        let meter = if to_upstream {
            &mut meters.to_upstream
        } else {
            &mut meters.to_client
        };
        match chunk.map(|c| meter.feed(c)) {
            Some(Err(e)) => {
                self.metrics
                    .framing_rejections
                    .with_label_values(&["websocket_frame"])
                    .inc();
                Error::e_explain(ErrorType::InvalidHTTPHeader, format!("websocket: {e:?}"))
            }
            _ => Ok(()),
        }
    }
}
