//! The access log: one line per request, on when `log.access` is true and off when it is false, in
//! both formats; `log.filter` (and `RUST_LOG`) govern the other logs only. The line is written
//! directly (fields are known and bounded, so one formatted write replaces tracing's generic
//! machinery, which cost ~9% of the proxy's per-request instructions) into a shared buffer that a
//! flusher thread writes out every 100 ms: a JSON object in `json` mode, a `key=value` line in
//! `pretty` (dev) mode. Never the token, the password or the raw email.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

/// How often buffered lines are written out (nginx's `access_log … buffer= flush=` model).
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Lines waiting beyond this are dropped (and counted) rather than stall requests on a stuck sink.
const MAX_PENDING: usize = 8 * 1024 * 1024;

/// One request, as logged.
pub(crate) struct AccessEntry<'a> {
    pub request_id: &'a str,
    pub trace_id: &'a str,
    pub route: &'a str,
    pub upstream: &'a str,
    pub method: &'a str,
    pub status: u16,
    pub duration_ms: f64,
    pub auth: &'a str,
    pub client: Option<IpAddr>,
    /// The resolved API version on a versioned route (a configured date), else `-`.
    pub api_version: &'a str,
}

/// Lines waiting for the flusher.
pub(crate) struct Batch {
    pending: Mutex<Vec<u8>>,
    stop: AtomicBool,
    dropped: AtomicU64,
}

pub(crate) enum AccessLog {
    Off,
    /// Lines appended to a shared buffer that a flusher thread writes out every [`FLUSH_EVERY`]:
    /// no hand-off between threads per request, one `write(2)` per batch.
    On {
        json: bool,
        batch: Arc<Batch>,
        flusher: Option<std::thread::JoinHandle<()>>,
    },
}

thread_local! {
    /// Each worker thread formats into its own reused buffer.
    static SCRATCH: RefCell<String> = RefCell::new(String::with_capacity(512));
    /// The formatted second of the last line on this thread (`YYYY-MM-DDTHH:MM:SS`).
    static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
}

impl AccessLog {
    /// The access log on stdout, if `enabled`.
    pub(crate) fn new(enabled: bool, json: bool) -> Self {
        Self::to_writer(enabled, json, std::io::stdout())
    }

    /// The access log on `sink` (tests pass a buffer), if `enabled`.
    pub(crate) fn to_writer(
        enabled: bool,
        json: bool,
        mut sink: impl std::io::Write + Send + 'static,
    ) -> Self {
        if !enabled {
            return Self::Off;
        }
        let batch = Arc::new(Batch {
            pending: Mutex::new(Vec::with_capacity(64 * 1024)),
            stop: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        });
        let shared = Arc::clone(&batch);
        let flusher = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut out = Vec::with_capacity(64 * 1024);
                loop {
                    let stopping = shared.stop.load(Ordering::Acquire);
                    std::mem::swap(&mut out, &mut *shared.pending.lock());
                    if !out.is_empty() {
                        let _ = sink.write_all(&out).and_then(|()| sink.flush());
                        out.clear();
                    }
                    let dropped = shared.dropped.swap(0, Ordering::Relaxed);
                    if dropped > 0 {
                        tracing::warn!(
                            dropped,
                            "access log lines dropped: the log sink is too slow"
                        );
                    }
                    if stopping {
                        return;
                    }
                    std::thread::park_timeout(FLUSH_EVERY);
                }
            })
            .ok();
        Self::On {
            json,
            batch,
            flusher,
        }
    }

    pub(crate) fn record(&self, e: &AccessEntry<'_>) {
        let Self::On { json, batch, .. } = self else {
            return;
        };
        let now = time::OffsetDateTime::now_utc();
        SCRATCH.with_borrow_mut(|line| {
            line.clear();
            if *json {
                write_json_line(line, e, now);
            } else {
                write_pretty_line(line, e, now);
            }
            let mut pending = batch.pending.lock();
            if pending.len() + line.len() <= MAX_PENDING {
                pending.extend_from_slice(line.as_bytes());
            } else {
                batch.dropped.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

impl Drop for AccessLog {
    /// Writes out what is pending before the proxy goes away.
    fn drop(&mut self) {
        if let Self::On { batch, flusher, .. } = self {
            batch.stop.store(true, Ordering::Release);
            if let Some(t) = flusher.take() {
                t.thread().unpark();
                let _ = t.join();
            }
        }
    }
}

/// RFC 3339 in UTC, as the `time` crate writes it (fraction without trailing zeros, none when
/// zero); the date and time of day are formatted once per second per thread.
fn push_timestamp(out: &mut String, now: time::OffsetDateTime) {
    let secs = now.unix_timestamp();
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != secs {
            let whole = now.replace_nanosecond(0).unwrap_or(now);
            *text = whole
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            text.pop(); // the `Z`
            *cached = secs;
        }
        out.push_str(text);
    });
    let nanos = now.nanosecond();
    if nanos > 0 {
        let mut digits = itoa::Buffer::new();
        let frac = digits.format(nanos);
        out.push('.');
        for _ in frac.len()..9 {
            out.push('0');
        }
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
}

/// `duration_ms` with three decimals, from integer microseconds (no float formatting).
fn push_millis(out: &mut String, ms: f64) {
    let micros = (ms * 1000.0).round().max(0.0) as u64;
    let mut b = itoa::Buffer::new();
    out.push_str(b.format(micros / 1000));
    out.push('.');
    let frac = micros % 1000;
    if frac < 100 {
        out.push('0');
    }
    if frac < 10 {
        out.push('0');
    }
    out.push_str(b.format(frac));
}

/// The human-readable access line of `pretty` mode (dev): the same fields as the JSON line.
#[cfg(test)]
pub(crate) fn pretty_line(e: &AccessEntry<'_>, now: time::OffsetDateTime) -> String {
    let mut out = String::new();
    write_pretty_line(&mut out, e, now);
    out
}

fn write_pretty_line(out: &mut String, e: &AccessEntry<'_>, now: time::OffsetDateTime) {
    push_timestamp(out, now);
    // Only `upstream`, `route` and `api_version` come from config; they are label-safe names or
    // validated dates, so no quoting.
    let _ = write!(
        out,
        "  INFO access: {} {} status={} duration_ms=",
        e.method, e.route, e.status
    );
    push_millis(out, e.duration_ms);
    let _ = write!(
        out,
        " upstream={} api_version={} auth={} client=",
        e.upstream, e.api_version, e.auth
    );
    match e.client {
        Some(ip) => {
            let _ = write!(out, "{ip}");
        }
        None => out.push('-'),
    }
    let _ = writeln!(out, " request_id={} trace_id={}", e.request_id, e.trace_id);
}

/// Appends `s` as a JSON string (quotes and escapes only where needed).
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(s);
    } else {
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
    }
    out.push('"');
}

/// The JSON access line, with the same field names the tracing JSON formatter uses for other lines.
#[cfg(test)]
pub(crate) fn json_line(e: &AccessEntry<'_>, now: time::OffsetDateTime) -> String {
    let mut out = String::with_capacity(320);
    write_json_line(&mut out, e, now);
    out
}

fn write_json_line(out: &mut String, e: &AccessEntry<'_>, now: time::OffsetDateTime) {
    out.push_str("{\"timestamp\":\"");
    push_timestamp(out, now);
    out.push_str(
        "\",\"level\":\"INFO\",\"target\":\"access\",\"message\":\"request\",\"request_id\":",
    );
    push_str(out, e.request_id);
    out.push_str(",\"trace_id\":");
    push_str(out, e.trace_id);
    out.push_str(",\"route\":");
    push_str(out, e.route);
    out.push_str(",\"upstream\":");
    push_str(out, e.upstream);
    out.push_str(",\"api_version\":");
    push_str(out, e.api_version);
    out.push_str(",\"method\":");
    push_str(out, e.method);
    out.push_str(",\"status\":");
    out.push_str(itoa::Buffer::new().format(e.status));
    out.push_str(",\"duration_ms\":");
    push_millis(out, e.duration_ms);
    out.push_str(",\"auth\":");
    push_str(out, e.auth);
    out.push_str(",\"client\":");
    match e.client {
        Some(ip) => {
            out.push('"');
            crate::policy::client::push_ip(out, ip);
            out.push('"');
        }
        None => out.push_str("null"),
    }
    out.push_str("}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test can read after the writer thread has flushed.
    #[derive(Clone, Default)]
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn entry() -> AccessEntry<'static> {
        AccessEntry {
            request_id: "5f0c7f5e-0c5e-4f7e-9a43-6f2b1f0f6a11",
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
            route: "todos",
            upstream: "todo",
            method: "GET",
            status: 200,
            duration_ms: 1.5,
            auth: "ok",
            client: None,
            api_version: "2026-12-01",
        }
    }

    /// What `log.access` decides, in both formats, with no tracing subscriber (so no `log.filter`)
    /// involved: on writes one line per request, off writes nothing.
    #[test]
    fn log_access_alone_decides_in_both_formats() {
        for json in [false, true] {
            for enabled in [false, true] {
                let sink = Sink::default();
                let log = AccessLog::to_writer(enabled, json, sink.clone());
                log.record(&entry());
                log.record(&entry());
                drop(log); // joins the writer thread, flushing every line
                let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
                let expected = if enabled { 2 } else { 0 };
                assert_eq!(
                    text.lines().count(),
                    expected,
                    "json={json} enabled={enabled}: {text}"
                );
                if enabled {
                    assert!(text.contains("todos"), "{text}");
                    assert!(text.contains("200"), "{text}");
                }
            }
        }
    }

    #[test]
    fn timestamps_and_durations_are_written_as_before_without_formatting_machinery() {
        let rfc = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        };
        let base = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        for nanos in [0, 1, 120_000_000, 123_456_789, 999_999_999, 500] {
            let t = base.replace_nanosecond(nanos).unwrap();
            let mut out = String::new();
            push_timestamp(&mut out, t);
            assert_eq!(out, rfc(t), "{nanos} ns");
        }
        for (ms, text) in [
            (1.5, "1.500"),
            (0.0004, "0.000"),
            (12.3456, "12.346"),
            (1000.0, "1000.000"),
        ] {
            let mut out = String::new();
            push_millis(&mut out, ms);
            assert_eq!(out, text);
        }
    }

    #[test]
    fn the_pretty_line_names_every_field() {
        let line = pretty_line(&entry(), time::OffsetDateTime::UNIX_EPOCH);
        assert_eq!(
            line,
            "1970-01-01T00:00:00Z  INFO access: GET todos status=200 duration_ms=1.500 upstream=todo api_version=2026-12-01 auth=ok client=- request_id=5f0c7f5e-0c5e-4f7e-9a43-6f2b1f0f6a11 trace_id=4bf92f3577b34da6a3ce929d0e0e4736\n"
        );
    }

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
            api_version: "-",
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
        assert_eq!(v["api_version"], "-");
    }
}
