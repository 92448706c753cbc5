//! Connection-level limits that no request filter can enforce, because pingora reads the whole request
//! head before the first filter runs (SECURITY.md R-HTTP table):
//!
//! - **A total deadline for the request head** (10 s by default, slowloris). `EdgeApp` wraps every
//!   accepted stream in `GuardedStream`, whose reads fail once a head has been arriving for longer
//!   than the deadline; it writes `408 {"error":"request_timeout"}` and the connection closes. The
//!   clock starts at accept for the first request and at the first byte of each later one (the wait
//!   before that is the keep-alive idle timeout's). The gateway tells the stream when a head is
//!   complete (`early_request_filter`) and when a request is over (`logging`), through
//!   `head_complete` / `request_done` below.
//! - **Chunk lines** (`chunked.rs`): extensions over 1 KiB and bare line ends in a chunked body are
//!   found on the raw bytes as they are read; the gateway then refuses the request with 400.
//! - **Every answer is ours** (`canned.rs`). pingora's HTTP/1 parser answers some requests itself
//!   before any filter runs (a malformed head: 400; `CONNECT`: 405), with an empty body and
//!   `Server: Pingora`. A response written on the stream while no request is in the gateway's hands
//!   (between `request_done` and the next `head_complete`) can only be such an answer: the wrapper
//!   swallows it and writes our JSON answer with the same status instead.
//! - **Connections per client IP** (100 by default). Counted per TCP peer at accept; a peer over the
//!   limit gets `429 {"error":"too_many_connections"}` and is closed. Peers in `trusted_proxies`
//!   are exempt: behind a load balancer every client shares its address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType,
};
use pingora::server::ShutdownWatch;
use std::future::Future as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};

use tokio::time::Sleep;

use crate::policy::client::IpNet;
use crate::raw::RawLimits;
use settings::Problems;

pub(crate) mod canned;
pub(crate) mod chunked;

use self::canned::CannedAnswers;
use self::chunked::ChunkScanner;

/// Body bytes that arrive in the same read as the head are kept (up to this much) for the chunk check.
const MAX_LEFTOVER: usize = 64 * 1024;

/// Connection limits from config (`limits.header_timeout_ms`, `limits.max_connections_per_ip`).
#[derive(Debug, Clone)]
pub struct ConnLimits {
    pub header_timeout: Duration,
    /// 0 turns the per-IP limit off.
    pub max_per_ip: usize,
    pub exempt: Vec<IpNet>,
}

impl ConnLimits {
    /// Validates the connection keys of `[limits]`; trusted proxies are exempt from the per-IP limit.
    pub(crate) fn from_raw(l: &RawLimits, exempt: &[IpNet], p: &mut Problems) -> Self {
        if l.header_timeout_ms == 0 {
            p.push("limits.header_timeout_ms: must be greater than 0");
        }
        Self {
            header_timeout: Duration::from_millis(l.header_timeout_ms),
            max_per_ip: l.max_connections_per_ip,
            exempt: exempt.to_vec(),
        }
    }
}

/// The first head, timed from accept.
const FIRST_HEAD: u8 = 0;
/// Head complete, request in progress: no head deadline.
const IN_REQUEST: u8 = 1;
/// A later head, timed from its first byte.
const NEXT_HEAD: u8 = 2;
/// A request ended with its body unread (pingora drains or closes): where the next head starts is no
/// longer known, so the rest of the connection is not watched (no deadline, no chunk check).
const UNTRACKED: u8 = 3;

/// Where the connection is, as far as the head deadline is concerned.
#[derive(Debug)]
struct HeadState {
    phase: AtomicU8,
    /// A request is in the gateway's hands (from `head_complete` to `request_done`): what is written
    /// now is the gateway's answer. Outside that window only pingora's parser writes.
    in_gateway: AtomicBool,
}

/// What the stream watches of the request body: where the head ended, and the chunk scanner.
#[derive(Debug, Default)]
struct BodyWatch {
    /// How much of `\r\n\r\n` the head bytes end with so far.
    head_match: u8,
    head_ended: bool,
    /// Bytes read past the end of the head (the start of the body).
    leftover: Vec<u8>,
    leftover_overflow: bool,
    /// Set by the gateway for chunked requests.
    chunks: Option<ChunkScanner>,
}

impl BodyWatch {
    fn saw_head_bytes(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        if !self.head_ended {
            match head_end(self.head_match, bytes) {
                Ok(end) => {
                    self.head_ended = true;
                    rest = &bytes[end..];
                }
                Err(matched) => {
                    self.head_match = matched;
                    return;
                }
            }
        }
        if self.leftover.len() + rest.len() > MAX_LEFTOVER {
            self.leftover_overflow = true;
        } else {
            self.leftover.extend_from_slice(rest);
        }
    }
}

const HEAD_END: &[u8] = b"\r\n\r\n";

/// Built once: `memmem::find` would build its searcher on every call.
static HEAD_END_FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(HEAD_END));

/// Where the head's blank line ends in `bytes`, `matched` bytes of it having ended the earlier
/// reads; or, when it is not there, how many of its bytes these reads now end with. A SIMD search
/// (`memmem`), not a byte-at-a-time state machine: every head byte of every request passes here.
fn head_end(matched: u8, bytes: &[u8]) -> Result<usize, u8> {
    let m = usize::from(matched).min(3);
    // The earlier reads' part of the line, joined with the first bytes of this one.
    let mut joined = [0u8; 6];
    let n = bytes.len().min(3);
    joined[..m].copy_from_slice(&HEAD_END[..m]);
    joined[m..m + n].copy_from_slice(&bytes[..n]);
    if m > 0 {
        if let Some(p) = HEAD_END_FINDER.find(&joined[..m + n]) {
            return Ok(p + 4 - m);
        }
    }
    if let Some(p) = HEAD_END_FINDER.find(bytes) {
        return Ok(p + 4);
    }
    // The last three bytes seen, earlier reads included.
    let seen: &[u8] = if bytes.len() >= 3 {
        &bytes[bytes.len() - 3..]
    } else {
        &joined[(m + n).saturating_sub(3)..m + n]
    };
    Err((1..=3u8)
        .rev()
        .find(|k| seen.ends_with(&HEAD_END[..usize::from(*k)]))
        .unwrap_or(0))
}

/// An accepted stream with the request-head deadline.
#[derive(Debug)]
pub(crate) struct GuardedStream {
    inner: Stream,
    state: HeadState,
    /// The phase the deadline was last set up for.
    seen: u8,
    timeout: Duration,
    /// The head deadline: one timer per connection (no allocation per request), moved to a head's
    /// deadline only when a read of that head has to wait: a head that arrives in one read never
    /// touches the timer wheel.
    deadline: Pin<Box<Sleep>>,
    /// Where `deadline` is set now.
    deadline_at: tokio::time::Instant,
    /// Armed while a head is awaited: at accept, then at the first byte of each later head.
    armed: bool,
    /// When the head being awaited started (accept, or its first byte).
    head_started: tokio::time::Instant,
    /// The 408 has been (or is being) written; reads fail from then on.
    timed_out: Option<usize>,
    timeouts: prometheus::IntCounter,
    body: Mutex<BodyWatch>,
    answers: Arc<CannedAnswers>,
    /// Our replacement for an answer pingora's parser wrote, and how much of it is on the wire.
    replacing: Option<(Vec<u8>, usize)>,
    parser_refusals: prometheus::IntCounter,
}

impl GuardedStream {
    fn new(inner: Stream, timeout: Duration, app: &EdgeAppShared) -> Self {
        let accepted = tokio::time::Instant::now();
        Self {
            inner,
            state: HeadState {
                phase: AtomicU8::new(FIRST_HEAD),
                in_gateway: AtomicBool::new(false),
            },
            seen: FIRST_HEAD,
            timeout,
            deadline: Box::pin(tokio::time::sleep_until(accepted + timeout)),
            deadline_at: accepted + timeout,
            armed: true,
            head_started: accepted,
            timed_out: None,
            timeouts: app.head_timeouts.clone(),
            body: Mutex::new(BodyWatch::default()),
            answers: Arc::clone(&app.answers),
            replacing: None,
            parser_refusals: app.parser_refusals.clone(),
        }
    }

    /// A write while no request is in the gateway's hands is pingora's own answer to a head it
    /// refused: replace it (once) with ours, keeping its status.
    fn intercept(&mut self, first: &[u8]) {
        if self.replacing.is_none()
            && self.timed_out.is_none()
            && !self.state.in_gateway.load(Ordering::Acquire)
            && first.starts_with(b"HTTP/1.")
        {
            let status = canned::status_of(first);
            self.parser_refusals.inc();
            self.replacing = Some((self.answers.for_parser_status(status).into_owned(), 0));
        }
    }

    /// Writes what is left of the replacement answer.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let Some((answer, written)) = self.replacing.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        while *written < answer.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &answer[*written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Writes as much of the 408 as the socket takes now; then reads report the timeout.
    fn poll_answer_timeout(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let mut written = self.timed_out.unwrap_or(0);
        let answers = Arc::clone(&self.answers);
        let answer = answers.head_timeout();
        while written < answer.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &answer[written..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => break,
                Poll::Ready(Ok(n)) => written += n,
                Poll::Pending => {
                    self.timed_out = Some(written);
                    return Poll::Pending;
                }
            }
        }
        self.timed_out = Some(answer.len());
        let _ = Pin::new(&mut self.inner).poll_flush(cx);
        Poll::Ready(Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "request head not complete within the deadline",
        )))
    }
}

fn guarded(stream: Option<&Stream>) -> Option<&GuardedStream> {
    stream.and_then(|s| s.as_any().downcast_ref::<GuardedStream>())
}

impl GuardedStream {
    fn watch(&self) -> parking_lot::MutexGuard<'_, BodyWatch> {
        self.body.lock()
    }
}

/// The gateway saw a complete head on `stream` (from `early_request_filter`): stop the clock, and
/// for a chunked body start checking its chunk lines (from the bytes already read past the head).
pub(crate) fn head_complete(stream: Option<&Stream>, chunked: bool) {
    if let Some(s) = guarded(stream) {
        s.state.in_gateway.store(true, Ordering::Release);
        if s.state.phase.load(Ordering::Acquire) == UNTRACKED {
            return;
        }
        s.state.phase.store(IN_REQUEST, Ordering::Release);
        let mut w = s.watch();
        let leftover = std::mem::take(&mut w.leftover);
        w.chunks = (chunked && !w.leftover_overflow).then(|| {
            let mut scanner = ChunkScanner::new();
            scanner.feed(&leftover);
            scanner
        });
    }
}

/// Why the chunked body on `stream` must be refused, if it must.
pub(crate) fn body_violation(stream: Option<&Stream>) -> Option<&'static str> {
    guarded(stream).and_then(|s| s.watch().chunks.as_ref().and_then(ChunkScanner::violation))
}

/// The request on `stream` is over (from `logging`): the next bytes start a new head, if the body was
/// read to its end.
pub(crate) fn request_done(stream: Option<&Stream>, body_done: bool) {
    if let Some(s) = guarded(stream) {
        s.state.in_gateway.store(false, Ordering::Release);
        if s.state.phase.load(Ordering::Acquire) == UNTRACKED {
            return;
        }
        let next = if body_done { NEXT_HEAD } else { UNTRACKED };
        s.state.phase.store(next, Ordering::Release);
        *s.watch() = BodyWatch::default();
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.timed_out.is_some() {
            return this.poll_answer_timeout(cx);
        }
        let phase = this.state.phase.load(Ordering::Acquire);
        if phase != this.seen {
            // A new phase: a later head is timed from its first byte, a request body not at all.
            this.seen = phase;
            this.armed = false;
        }
        if phase == UNTRACKED {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        let fresh = &buf.filled()[before..];
        if phase == IN_REQUEST {
            if !fresh.is_empty() {
                let mut w = this.watch();
                if let Some(scanner) = w.chunks.as_mut().filter(|s| !s.is_done()) {
                    scanner.feed(fresh);
                }
            }
            return result;
        }
        if !fresh.is_empty() {
            this.watch().saw_head_bytes(fresh);
        }
        if let Poll::Ready(Ok(())) = &result {
            if buf.filled().len() > before && !this.armed {
                // First bytes of a keep-alive request: its head has `timeout` from now.
                this.head_started = tokio::time::Instant::now();
                this.armed = true;
            }
            return result;
        }
        if !this.armed {
            return result;
        }
        let at = this.head_started + this.timeout;
        if this.deadline_at != at {
            this.deadline.as_mut().reset(at);
            this.deadline_at = at;
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.timeouts.inc();
            this.timed_out = Some(0);
            return this.poll_answer_timeout(cx);
        }
        result
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        this.intercept(buf);
        if this.replacing.is_some() {
            // pingora's answer is dropped; the connection closes after it.
            std::task::ready!(this.poll_replacement(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::task::ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::task::ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            this.intercept(first);
        }
        if this.replacing.is_some() {
            std::task::ready!(this.poll_replacement(cx))?;
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for GuardedStream {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(self.inner.as_mut()).await;
    }
}

impl UniqueID for GuardedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for GuardedStream {}

impl GetTimingDigest for GuardedStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for GuardedStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for GuardedStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for GuardedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

/// Open connections per client IP.
#[derive(Default)]
struct PerIp {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// Held while a connection is open; gives its slot back when dropped.
struct Slot<'a> {
    per_ip: &'a PerIp,
    ip: IpAddr,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut open = self.per_ip.open.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl PerIp {
    fn acquire(&self, ip: IpAddr, max: usize) -> Option<Slot<'_>> {
        let mut open = self.open.lock();
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot { per_ip: self, ip })
    }
}

/// What every wrapped stream of the listener shares.
struct EdgeAppShared {
    answers: Arc<CannedAnswers>,
    /// `edge_proxy_connections_open`.
    open: prometheus::IntGauge,
    head_timeouts: prometheus::IntCounter,
    parser_refusals: prometheus::IntCounter,
}

/// The public listener's application: pingora's HTTP proxy behind the connection limits above.
pub(crate) struct EdgeApp<A> {
    proxy: Arc<A>,
    limits: ConnLimits,
    per_ip: PerIp,
    over_per_ip: prometheus::IntCounter,
    shared: EdgeAppShared,
}

impl<A> EdgeApp<A> {
    /// `refused` is `edge_proxy_connections_refused_total{reason}`; `framing` is
    /// `edge_proxy_framing_rejections_total{reason}`, where parser refusals count as
    /// `invalid_request`; `security_headers` go on every canned answer.
    pub(crate) fn new(
        proxy: A,
        limits: ConnLimits,
        open: &prometheus::IntGauge,
        refused: &prometheus::IntCounterVec,
        framing: &prometheus::IntCounterVec,
        security_headers: &[(http::HeaderName, http::HeaderValue)],
    ) -> Self {
        Self {
            proxy: Arc::new(proxy),
            limits,
            per_ip: PerIp::default(),
            over_per_ip: refused.with_label_values(&["per_ip_limit"]),
            shared: EdgeAppShared {
                answers: Arc::new(CannedAnswers::new(security_headers)),
                open: open.clone(),
                head_timeouts: refused.with_label_values(&["header_timeout"]),
                parser_refusals: framing.with_label_values(&["invalid_request"]),
            },
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for EdgeApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // Counted from accept to close, refused connections included while they are answered.
        let _open = crate::obs::metrics::InFlight::start(&self.shared.open);
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let _slot = match peer {
            Some(ip)
                if self.limits.max_per_ip > 0
                    && !crate::policy::client::trusted(&self.limits.exempt, ip) =>
            {
                match self.per_ip.acquire(ip, self.limits.max_per_ip) {
                    Some(slot) => Some(slot),
                    None => {
                        self.over_per_ip.inc();
                        let _ = tokio::time::timeout(Duration::from_secs(1), async {
                            let _ = stream
                                .write_all(self.shared.answers.too_many_connections())
                                .await;
                            let _ = stream.flush().await;
                        })
                        .await;
                        Shutdown::shutdown(stream.as_mut()).await;
                        return None;
                    }
                }
            }
            _ => None,
        };
        let guarded: Stream = Box::new(GuardedStream::new(
            stream,
            self.limits.header_timeout,
            &self.shared,
        ));
        // pingora's HTTP/1 loop serves every request of the connection inside this call.
        self.proxy.process_new(guarded, shutdown).await
    }

    async fn cleanup(&self) {
        self.proxy.cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time state machine `head_end` replaced: the reference.
    fn reference(mut matched: u8, bytes: &[u8]) -> Result<usize, u8> {
        for (i, &b) in bytes.iter().enumerate() {
            matched = if b == HEAD_END[usize::from(matched)] {
                matched + 1
            } else {
                u8::from(b == b'\r')
            };
            if matched == 4 {
                return Ok(i + 1);
            }
        }
        Err(matched)
    }

    proptest::proptest! {
        /// Heads of `\r`, `\n` and `x` in any split: the same end, or the same state carried on.
        #[test]
        fn the_head_end_is_found_as_the_state_machine_finds_it(
            head in proptest::collection::vec(proptest::sample::select(vec![b'\r', b'\n', b'x']), 0..40),
            cuts in proptest::collection::vec(0usize..40, 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|c| *c <= head.len()).collect();
            cuts.sort_unstable();
            let (mut fast, mut slow) = (0u8, 0u8);
            let mut from = 0;
            for to in cuts.into_iter().chain([head.len()]) {
                let piece = &head[from..to];
                let (f, s) = (head_end(fast, piece), reference(slow, piece));
                proptest::prop_assert_eq!(f, s);
                match f {
                    Ok(_) => break,
                    Err(m) => (fast, slow) = (m, m),
                }
                from = to;
            }
        }
    }

    #[test]
    fn a_blank_line_split_over_reads_is_found() {
        assert_eq!(
            head_end(0, b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"),
            Ok(27)
        );
        assert_eq!(head_end(0, b"Host: a\r\n\r"), Err(3));
        assert_eq!(head_end(3, b"\nrest"), Ok(1));
        assert_eq!(head_end(2, b"\r"), Err(3));
        assert_eq!(head_end(1, b"x"), Err(0));
        assert_eq!(head_end(2, b"x\r\n\r\n"), Ok(5));
    }
}
