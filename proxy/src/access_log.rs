//! The access log: one line per request. In JSON mode the line is written directly (fields are known
//! and bounded, so one formatted write replaces tracing's generic JSON machinery, which cost ~9% of the
//! proxy's per-request instructions, `bench/observability-instructions.sh`) and handed to a dedicated
//! non-blocking writer; in pretty (dev) mode it is an ordinary `tracing` event. Never the token, the
//! password or the raw email.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;

use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};

/// One request, as logged.
pub struct AccessEntry<'a> {
    pub request_id: &'a str,
    pub trace_id: &'a str,
    pub route: &'a str,
    pub upstream: &'a str,
    pub method: &'a str,
    pub status: u16,
    pub duration_ms: f64,
    pub auth: &'a str,
    pub client: Option<IpAddr>,
}

pub enum AccessLog {
    Off,
    /// `tracing::info!(target: "access", …)` (human-readable dev output).
    Tracing,
    /// JSON lines on stdout through a non-blocking writer; the guard flushes on drop.
    Json {
        writer: NonBlocking,
        _guard: WorkerGuard,
    },
}

impl AccessLog {
    pub fn new(enabled: bool, json: bool) -> Self {
        match (enabled, json) {
            (false, _) => Self::Off,
            (true, false) => Self::Tracing,
            (true, true) => {
                let (writer, guard) = tracing_appender::non_blocking(std::io::stdout());
                Self::Json {
                    writer,
                    _guard: guard,
                }
            }
        }
    }

    pub fn record(&self, e: &AccessEntry<'_>) {
        match self {
            Self::Off => {}
            Self::Tracing => tracing::info!(
                target: "access",
                request_id = e.request_id,
                trace_id = e.trace_id,
                route = e.route,
                upstream = e.upstream,
                method = e.method,
                status = e.status,
                duration_ms = e.duration_ms,
                auth = e.auth,
                client = ?e.client,
                "request"
            ),
            Self::Json { writer, .. } => {
                let line = json_line(e, time::OffsetDateTime::now_utc());
                // A full writer drops the line rather than stall the request (tracing-appender lossy mode).
                let _ = writer.clone().write_all(line.as_bytes());
            }
        }
    }
}

/// Appends `s` as a JSON string body (quotes and escapes only where needed).
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The JSON access line, with the same field names the tracing JSON formatter uses for other lines.
pub fn json_line(e: &AccessEntry<'_>, now: time::OffsetDateTime) -> String {
    let mut out = String::with_capacity(320);
    out.push_str("{\"timestamp\":");
    let ts = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    push_str(&mut out, &ts);
    out.push_str(
        ",\"level\":\"INFO\",\"target\":\"access\",\"message\":\"request\",\"request_id\":",
    );
    push_str(&mut out, e.request_id);
    out.push_str(",\"trace_id\":");
    push_str(&mut out, e.trace_id);
    out.push_str(",\"route\":");
    push_str(&mut out, e.route);
    out.push_str(",\"upstream\":");
    push_str(&mut out, e.upstream);
    out.push_str(",\"method\":");
    push_str(&mut out, e.method);
    let _ = write!(
        out,
        ",\"status\":{},\"duration_ms\":{:.3},\"auth\":",
        e.status, e.duration_ms
    );
    push_str(&mut out, e.auth);
    out.push_str(",\"client\":");
    match e.client {
        Some(ip) => {
            let _ = write!(out, "\"{ip}\"");
        }
        None => out.push_str("null"),
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_line_is_valid_json_with_every_field() {
        let e = AccessEntry {
            request_id: "5f0c7f5e-0c5e-4f7e-9a43-6f2b1f0f6a11",
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
            route: "todos",
            upstream: "to\"do\\x\n",
            method: "GET",
            status: 200,
            duration_ms: 1.23456,
            auth: "ok",
            client: Some("127.0.0.1".parse().unwrap()),
        };
        let line = json_line(&e, time::OffsetDateTime::UNIX_EPOCH);
        assert!(line.ends_with("}\n"));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["target"], "access");
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00Z");
        assert_eq!(v["upstream"], "to\"do\\x\n", "escaped and round-tripped");
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_ms"], 1.235);
        assert_eq!(v["client"], "127.0.0.1");
    }
}
