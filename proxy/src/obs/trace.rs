//! W3C Trace Context (`traceparent`) at the edge: a valid client `traceparent` is continued (same
//! trace id and flags, a new span id for the proxy's hop); anything else starts a new trace. The
//! upstream always receives exactly one well-formed `traceparent`.

use std::fmt;

use rand::RngCore as _;

/// The `traceparent` sent upstream, built once per request: `00-<trace id>-<span id>-<flags>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TraceParent {
    header: String,
}

/// Where the parts sit in the header (`00-` + 32 + `-` + 16 + `-` + 2).
const TRACE_ID: std::ops::Range<usize> = 3..35;
const HEADER_LEN: usize = 55;

fn hex(len: usize, s: &str) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `N` random bytes, never all zero (all-zero ids are invalid in W3C Trace Context).
fn random_id<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    while buf.iter().all(|b| *b == 0) {
        rand::rng().fill_bytes(&mut buf);
    }
    buf
}

/// Appends `bytes` as lower-case hex (no allocation per byte).
fn push_hex(out: &mut String, bytes: &[u8]) {
    let mut buf = [0u8; 32];
    let hex = &mut buf[..bytes.len() * 2];
    if hex::encode_to_slice(bytes, hex).is_ok() {
        out.push_str(std::str::from_utf8(hex).unwrap_or_default());
    }
}

impl TraceParent {
    /// Parses a `traceparent` value (version 00 layout; future versions are read the same way):
    /// the trace id and the flags of a valid one.
    pub(crate) fn parse(v: &str) -> Option<(&str, &str)> {
        let mut parts = v.trim().split('-');
        let (version, trace_id, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() && version == "00" {
            return None;
        }
        let valid = hex(2, version)
            && version != "ff"
            && hex(32, trace_id)
            && trace_id.bytes().any(|b| b != b'0')
            && hex(16, parent)
            && parent.bytes().any(|b| b != b'0')
            && hex(2, flags);
        valid.then_some((trace_id, flags))
    }

    /// Continues the client's trace when its header is valid, else starts one (sampled).
    pub(crate) fn continue_or_start(incoming: Option<&str>) -> Self {
        let mut header = String::with_capacity(HEADER_LEN);
        header.push_str("00-");
        let flags = match incoming.and_then(Self::parse) {
            Some((trace_id, flags)) => {
                header.push_str(trace_id);
                flags
            }
            None => {
                push_hex(&mut header, &random_id::<16>());
                "01"
            }
        };
        header.push('-');
        push_hex(&mut header, &random_id::<8>());
        header.push('-');
        header.push_str(flags);
        Self { header }
    }

    pub(crate) fn trace_id(&self) -> &str {
        self.header.get(TRACE_ID).unwrap_or_default()
    }

    /// The header value for the upstream.
    pub(crate) fn as_str(&self) -> &str {
        &self.header
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_client_trace_is_continued_with_a_new_span() {
        let t = TraceParent::continue_or_start(Some(CLIENT));
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let s = t.to_string();
        assert!(s.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(s.ends_with("-01"));
        assert_ne!(s, CLIENT, "the proxy's hop has its own span id");
    }

    #[test]
    fn invalid_headers_start_a_new_trace() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            let t = TraceParent::continue_or_start(Some(bad));
            assert_ne!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736", "{bad}");
            assert!(
                TraceParent::parse(&t.to_string()).is_some(),
                "a started trace is well formed"
            );
        }
    }
}
