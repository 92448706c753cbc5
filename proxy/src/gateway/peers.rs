//! Passive health of upstream peers, from pingora's connect hooks: a peer that accepted a new
//! connection is up, one that refused it is down (`http::upstream::Pool::observe`), and an
//! idempotent request whose connect was refused gets one more try, on another peer.

use pingora::upstreams::peer::{HttpPeer, Peer as _};
use pingora::Error;

use crate::http::ctx::RequestCtx;

/// `connected_to_upstream` for a new (not reused) connection.
pub(super) fn connected(peer: &HttpPeer, ctx: &RequestCtx) {
    if let (Some(dest), Some(addr)) = (ctx.dest(), peer.address().as_inet()) {
        dest.pool.observe(*addr, true);
    }
}

/// `fail_to_connect`: the peer is down; the error says whether pingora tries again (another peer:
/// `upstream_peer` avoids `ctx.connect_retry`).
pub(super) fn connect_failed(
    method: &http::Method,
    peer: &HttpPeer,
    ctx: &mut RequestCtx,
    mut e: Box<Error>,
) -> Box<Error> {
    let (Some(dest), Some(addr)) = (ctx.dest(), peer.address().as_inet().copied()) else {
        return e;
    };
    dest.pool.observe(addr, false);
    if dest.pool.may_retry(method, ctx.connect_retry.is_some()) {
        ctx.connect_retry = Some(addr);
        e.set_retry(true);
    }
    e
}
