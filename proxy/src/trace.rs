//! W3C Trace Context (`traceparent`) at the edge: a valid client `traceparent` is continued (same
//! trace id and flags, a new span id for the proxy's hop); anything else starts a new trace. The
//! upstream always receives exactly one well-formed `traceparent`.

use std::fmt;

use rand::RngCore as _;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: String,
    span_id: String,
    flags: String,
}

fn hex(len: usize, s: &str) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    loop {
        rand::rng().fill_bytes(&mut buf);
        // All-zero ids are invalid in W3C Trace Context.
        if buf.iter().any(|b| *b != 0) {
            return buf.iter().map(|b| format!("{b:02x}")).collect();
        }
    }
}

impl TraceParent {
    /// Parses a `traceparent` value (version 00 layout; future versions are read the same way).
    pub fn parse(v: &str) -> Option<(String, String)> {
        let parts: Vec<&str> = v.trim().split('-').collect();
        let (version, trace_id, parent, flags) = match parts.as_slice() {
            [v, t, p, f] => (*v, *t, *p, *f),
            [v, t, p, f, ..] if *v != "00" => (*v, *t, *p, *f),
            _ => return None,
        };
        let valid = hex(2, version)
            && version != "ff"
            && hex(32, trace_id)
            && trace_id.bytes().any(|b| b != b'0')
            && hex(16, parent)
            && parent.bytes().any(|b| b != b'0')
            && hex(2, flags);
        valid.then(|| (trace_id.to_owned(), flags.to_owned()))
    }

    /// Continues the client's trace when its header is valid, else starts one (sampled).
    pub fn continue_or_start(incoming: Option<&str>) -> Self {
        let (trace_id, flags) = incoming
            .and_then(Self::parse)
            .unwrap_or_else(|| (random_hex(16), "01".to_owned()));
        Self {
            trace_id,
            span_id: random_hex(8),
            flags,
        }
    }

    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{}-{}-{}", self.trace_id, self.span_id, self.flags)
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
