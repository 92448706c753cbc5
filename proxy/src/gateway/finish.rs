//! The logging phase: the request is done on its connection (`http::conn`), its metrics are
//! recorded on the handles resolved at build time, and it gets its one access-log line.

use pingora::proxy::Session;

use super::Gateway;
use crate::http::ctx::{Handler, RequestCtx};
use crate::http::{body, conn};
use crate::obs::access_log::AccessEntry;
use crate::obs::metrics::bounded_method;
use crate::obs::trace::TraceParent;

impl Gateway {
    pub(super) fn request_finished(&self, session: &mut Session, ctx: &RequestCtx) {
        let body_done = !body::has_body(session.req_header()) || session.is_body_done();
        conn::request_done(session.as_downstream().stream(), body_done);
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let route = ctx.handler.label();
        let method = bounded_method(&session.req_header().method);
        let elapsed = ctx.started.elapsed();
        if self.request_metrics {
            let handles = match &ctx.handler {
                Handler::Route(r) => &r.target.requests,
                other => self.endpoint_metrics.of(other),
            };
            handles.record(&session.req_header().method, status, elapsed.as_secs_f64());
        }
        self.access_log.record(&AccessEntry {
            request_id: ctx.rid(),
            trace_id: ctx.trace.as_ref().map_or("-", TraceParent::trace_id),
            route,
            upstream: ctx.dest().map_or("-", |d| d.name.as_str()),
            api_version: ctx.version().map_or("-", |v| v.version.as_str()),
            method,
            status,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            auth: ctx.auth.label(),
            client: ctx.client_ip,
        });
    }
}
