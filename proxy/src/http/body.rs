//! Request bodies: the slow-body timeouts (R-HTTP table) and the [`BodyMeter`] that counts streamed
//! bytes against the route limit and the minimum rate. The meter keeps the refusal it decided, so the
//! error phase answers with it instead of decoding a pingora error.

use std::time::{Duration, Instant};

use pingora::http::RequestHeader;
use pingora::proxy::Session;
use settings::Problems;

use crate::error::ProxyError;
use crate::raw::RawLimits;

/// Slow-body protection (R-HTTP table).
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeouts {
    pub idle: Duration,
    pub min_rate_bytes_per_sec: u64,
    pub grace: Duration,
}

impl BodyTimeouts {
    /// Validates the body keys of `[limits]` (the default body limit included).
    pub fn from_raw(l: &RawLimits, p: &mut Problems) -> Self {
        if l.max_body_bytes == 0 {
            p.push("limits.max_body_bytes: must be greater than 0");
        }
        if l.body_idle_timeout_ms == 0 {
            p.push("limits.body_idle_timeout_ms: must be greater than 0");
        }
        Self {
            idle: Duration::from_millis(l.body_idle_timeout_ms),
            min_rate_bytes_per_sec: l.body_min_rate_bytes_per_sec,
            grace: Duration::from_millis(l.body_min_rate_grace_ms),
        }
    }
}

/// What a WebSocket connection may do once upgraded (`[limits] websocket_*`).
#[derive(Debug, Clone, Copy)]
pub struct WebSocketLimits {
    pub idle: Duration,
    pub max_frame: u64,
}

impl WebSocketLimits {
    pub fn from_raw(l: &RawLimits, p: &mut Problems) -> Self {
        if l.websocket_idle_timeout_ms == 0 || l.websocket_max_frame_bytes == 0 {
            p.push("limits.websocket_idle_timeout_ms and websocket_max_frame_bytes: must be greater than 0");
        }
        Self {
            idle: Duration::from_millis(l.websocket_idle_timeout_ms),
            max_frame: l.websocket_max_frame_bytes,
        }
    }
}

/// Counts a request body as it streams and decides when to refuse it. A refusal is kept here, so
/// the error phase answers with exactly what was decided.
#[derive(Debug)]
pub(crate) struct BodyMeter {
    /// The limit that applies (the route's, or the login endpoint's).
    pub limit: u64,
    pub bytes: u64,
    started: Option<Instant>,
    refusal: Option<ProxyError>,
}

impl Default for BodyMeter {
    fn default() -> Self {
        Self {
            limit: u64::MAX,
            bytes: 0,
            started: None,
            refusal: None,
        }
    }
}

impl BodyMeter {
    /// Counts `len` more bytes arriving at `now`; over the limit → 413, below the minimum rate
    /// (after the grace period) → 408.
    pub(crate) fn feed(
        &mut self,
        len: usize,
        now: Instant,
        t: &BodyTimeouts,
    ) -> Result<(), ProxyError> {
        let started = *self.started.get_or_insert(now);
        self.bytes = self.bytes.saturating_add(len as u64);
        let elapsed = now.saturating_duration_since(started);
        if t.min_rate_bytes_per_sec > 0 && elapsed > t.grace {
            let rate = self.bytes as f64 / elapsed.as_secs_f64();
            if rate < t.min_rate_bytes_per_sec as f64 {
                return Err(self.refuse(ProxyError::RequestTimeout));
            }
        }
        if self.bytes > self.limit {
            return Err(self.refuse(ProxyError::PayloadTooLarge {
                max_bytes: self.limit,
            }));
        }
        Ok(())
    }

    /// Records a refusal decided elsewhere (a chunk-line violation) and returns it.
    pub(crate) fn refuse(&mut self, err: ProxyError) -> ProxyError {
        self.refusal = Some(err.clone());
        err
    }

    /// The refusal decided while the body streamed, if any.
    pub(crate) fn take_refusal(&mut self) -> Option<ProxyError> {
        self.refusal.take()
    }
}

/// The request declares a body (a `Transfer-Encoding`, or a `Content-Length` other than 0).
pub(crate) fn has_body(req: &RequestHeader) -> bool {
    req.headers.contains_key(http::header::TRANSFER_ENCODING)
        || req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// Refuses a declared body over `max` before any of it is read (R-HTTP-2); the head's syntax was
/// checked by `framing::check_head`.
pub(crate) fn check_declared(req: &RequestHeader, max: u64) -> Result<(), ProxyError> {
    match crate::http::framing::content_length(req) {
        Some(n) if n > max => Err(ProxyError::PayloadTooLarge { max_bytes: max }),
        _ => Ok(()),
    }
}

/// Reads a whole (small) body through `meter`, refusing it as soon as it passes the meter's limit.
pub(crate) async fn read_capped(
    session: &mut Session,
    meter: &mut BodyMeter,
    t: &BodyTimeouts,
) -> Result<Vec<u8>, ProxyError> {
    let mut body = Vec::new();
    loop {
        let read = session.read_request_body().await;
        if crate::http::conn::body_violation(session.as_downstream().stream()).is_some() {
            return Err(ProxyError::InvalidRequest);
        }
        match read {
            Ok(Some(chunk)) => {
                meter.feed(chunk.len(), Instant::now(), t)?;
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(_) => return Err(ProxyError::InvalidRequest),
        }
    }
}

/// After an early answer on a request whose body is still arriving: read and discard what the client
/// keeps sending, for a bounded time and amount, before the connection closes. Closing a socket with
/// unread bytes makes the kernel send a reset, which can destroy the answer in flight (the client sees
/// a reset instead of the 413).
pub(crate) async fn drain_briefly(session: &mut Session) {
    /// Long enough for a client to notice the answer; short enough that a slow client cannot hold us.
    const DRAIN_TIME: Duration = Duration::from_secs(1);
    /// Bounded so a fast client cannot make us read an arbitrary upload.
    const DRAIN_BYTES: usize = 16 * 1024 * 1024;
    let deadline = tokio::time::Instant::now() + DRAIN_TIME;
    let mut drained = 0;
    while drained < DRAIN_BYTES && !session.is_body_done() {
        match tokio::time::timeout_at(deadline, session.read_request_body()).await {
            Ok(Ok(Some(chunk))) => drained += chunk.len(),
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: BodyTimeouts = BodyTimeouts {
        idle: Duration::from_secs(10),
        min_rate_bytes_per_sec: 100,
        grace: Duration::from_secs(2),
    };

    #[test]
    fn the_meter_refuses_over_the_limit_and_keeps_its_refusal() {
        let mut m = BodyMeter {
            limit: 10,
            ..BodyMeter::default()
        };
        let t0 = Instant::now();
        assert_eq!(m.feed(6, t0, &T), Ok(()));
        assert_eq!(m.feed(4, t0, &T), Ok(()), "exactly the limit is fine");
        let err = ProxyError::PayloadTooLarge { max_bytes: 10 };
        assert_eq!(m.feed(1, t0, &T), Err(err.clone()));
        assert_eq!(m.take_refusal(), Some(err));
        assert_eq!(m.take_refusal(), None);
    }

    #[test]
    fn a_slow_body_is_refused_only_after_the_grace_period() {
        let mut m = BodyMeter::default();
        let t0 = Instant::now();
        assert_eq!(m.feed(1, t0, &T), Ok(()));
        assert_eq!(
            m.feed(1, t0 + Duration::from_secs(2), &T),
            Ok(()),
            "within grace"
        );
        assert_eq!(
            m.feed(1, t0 + Duration::from_secs(3), &T),
            Err(ProxyError::RequestTimeout),
            "3 bytes in 3 s is under 100 B/s"
        );
        let mut fast = BodyMeter::default();
        assert_eq!(fast.feed(1000, t0, &T), Ok(()));
        assert_eq!(fast.feed(1000, t0 + Duration::from_secs(5), &T), Ok(()));
        let off = BodyTimeouts {
            min_rate_bytes_per_sec: 0,
            ..T
        };
        let mut m = BodyMeter::default();
        assert_eq!(m.feed(1, t0, &off), Ok(()));
        assert_eq!(
            m.feed(1, t0 + Duration::from_secs(60), &off),
            Ok(()),
            "no minimum rate"
        );
    }
}
