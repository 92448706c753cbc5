//! WebSocket upgrades (issue 18): which requests are a real WebSocket handshake (RFC 6455 4.1), and
//! the frame meter that caps each frame's payload as the bytes stream by, in either direction,
//! whatever the reads split (RFC 6455 5.2). The proxy does not reassemble or unmask anything: it only
//! reads each frame header and skips the payload it announces.
//!
//! This file depends on nothing but `http`: the fuzz target includes it as it is.

use http::{HeaderMap, Method};

/// A real WebSocket handshake: `GET` over HTTP/1.1 with `Upgrade: websocket`, `Connection`
/// naming `upgrade`, a `Sec-WebSocket-Key` and version 13. Anything else (`h2c`, other protocols,
/// a half-formed handshake) is a plain request, and its upgrade fields never reach the upstream.
pub(crate) fn is_handshake(method: &Method, http11: bool, headers: &HeaderMap) -> bool {
    let has = |name: http::header::HeaderName, wanted: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(wanted)))
        })
    };
    *method == Method::GET
        && http11
        && has(http::header::UPGRADE, "websocket")
        && has(http::header::CONNECTION, "upgrade")
        && headers.contains_key(http::header::SEC_WEBSOCKET_KEY)
        && headers
            .get(http::header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v.as_bytes() == b"13")
}

/// Why a stream of frames was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// A frame announced more payload than the cap.
    TooLarge { announced: u64 },
    /// A 64-bit length with its most significant bit set (RFC 6455 5.2 forbids it).
    InvalidLength,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Reading a frame header: the bytes so far.
    Header { buf: [u8; 14], have: usize },
    /// Skipping the payload of the current frame.
    Payload { left: u64 },
}

/// Follows the frames of one direction of a WebSocket connection.
#[derive(Debug, Clone)]
pub(crate) struct FrameMeter {
    max_payload: u64,
    state: State,
    failed: Option<FrameError>,
}

/// The frames of both directions of one WebSocket connection.
pub(crate) struct Meters {
    pub to_upstream: FrameMeter,
    pub to_client: FrameMeter,
}

impl Meters {
    pub(crate) fn new(max_payload: u64) -> Self {
        Self {
            to_upstream: FrameMeter::new(max_payload),
            to_client: FrameMeter::new(max_payload),
        }
    }
}

/// The header length a frame's first two bytes announce (2 to 14).
fn header_len(b1: u8) -> usize {
    let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
    let ext = match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + ext + mask
}

/// The payload length of a complete header.
fn payload_len(h: &[u8]) -> Result<u64, FrameError> {
    match h[1] & 0x7f {
        126 => Ok(u64::from(u16::from_be_bytes([h[2], h[3]]))),
        127 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[2..10]);
            let n = u64::from_be_bytes(b);
            if n >> 63 == 1 {
                Err(FrameError::InvalidLength)
            } else {
                Ok(n)
            }
        }
        n => Ok(u64::from(n)),
    }
}

impl FrameMeter {
    pub(crate) fn new(max_payload: u64) -> Self {
        Self {
            max_payload,
            state: State::Header {
                buf: [0; 14],
                have: 0,
            },
            failed: None,
        }
    }

    /// Takes the next bytes of the stream; once it has failed, it stays failed.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Result<(), FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        while !bytes.is_empty() {
            match &mut self.state {
                State::Payload { left } => {
                    let take = u64::try_from(bytes.len()).unwrap_or(u64::MAX).min(*left);
                    *left -= take;
                    // `take` is at most `bytes.len()`.
                    bytes = &bytes[usize::try_from(take).unwrap_or(bytes.len())..];
                    if *left == 0 {
                        self.state = State::Header {
                            buf: [0; 14],
                            have: 0,
                        };
                    }
                }
                State::Header { buf, have } => {
                    let need = if *have < 2 { 2 } else { header_len(buf[1]) };
                    let take = (need - *have).min(bytes.len());
                    buf[*have..*have + take].copy_from_slice(&bytes[..take]);
                    *have += take;
                    bytes = &bytes[take..];
                    if *have < 2 || *have < header_len(buf[1]) {
                        continue;
                    }
                    let len = match payload_len(&buf[..*have]) {
                        Ok(n) if n > self.max_payload => Err(FrameError::TooLarge { announced: n }),
                        other => other,
                    };
                    match len {
                        Ok(0) => *have = 0,
                        Ok(n) => self.state = State::Payload { left: n },
                        Err(e) => {
                            self.failed = Some(e);
                            return Err(e);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The meter's answer for a whole stream at once, written the plain way: what `FrameMeter::feed`
/// must agree with however the stream is split (the fuzz target `websocket_frames`, which includes
/// this file, and the tests compare them).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn reference(stream: &[u8], max_payload: u64) -> Result<(), FrameError> {
    let mut at = 0usize;
    while at < stream.len() {
        let rest = &stream[at..];
        if rest.len() < 2 || rest.len() < header_len(rest[1]) {
            return Ok(()); // an incomplete header: more bytes may come
        }
        let h = header_len(rest[1]);
        let n = payload_len(&rest[..h])?;
        if n > max_payload {
            return Err(FrameError::TooLarge { announced: n });
        }
        let Some(next) = usize::try_from(n)
            .ok()
            .and_then(|n| at.checked_add(h)?.checked_add(n))
        else {
            return Ok(()); // a payload longer than memory: it never ends here
        };
        at = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: usize, masked: bool) -> Vec<u8> {
        let mut f = vec![0x82];
        let m = if masked { 0x80 } else { 0 };
        match payload {
            0..=125 => f.push(m | u8::try_from(payload).unwrap()),
            126..=65_535 => {
                f.push(m | 126);
                f.extend_from_slice(&u16::try_from(payload).unwrap().to_be_bytes());
            }
            _ => {
                f.push(m | 127);
                f.extend_from_slice(&(payload as u64).to_be_bytes());
            }
        }
        if masked {
            f.extend_from_slice(&[1, 2, 3, 4]);
        }
        f.extend(std::iter::repeat_n(b'x', payload));
        f
    }

    fn fed_in_pieces(stream: &[u8], max: u64, piece: usize) -> Result<(), FrameError> {
        let mut m = FrameMeter::new(max);
        for chunk in stream.chunks(piece) {
            m.feed(chunk)?;
        }
        Ok(())
    }

    #[test]
    fn frames_under_the_cap_pass_whatever_the_split() {
        let mut stream = Vec::new();
        for (n, masked) in [
            (0, true),
            (5, false),
            (125, true),
            (126, false),
            (70_000, true),
        ] {
            stream.extend(frame(n, masked));
        }
        for piece in [1, 2, 3, 7, 14, 1000, stream.len()] {
            assert_eq!(fed_in_pieces(&stream, 70_000, piece), Ok(()), "{piece}");
        }
        assert_eq!(reference(&stream, 70_000), Ok(()));
    }

    #[test]
    fn a_frame_over_the_cap_is_refused_from_its_header_alone() {
        let mut stream = frame(10, true);
        stream.extend(&frame(70_000, true)[..14]); // the header and no payload yet
        for piece in [1, 3, 5, stream.len()] {
            assert_eq!(
                fed_in_pieces(&stream, 65_536, piece),
                Err(FrameError::TooLarge { announced: 70_000 }),
                "{piece}"
            );
        }
        assert_eq!(
            reference(&stream, 65_536),
            Err(FrameError::TooLarge { announced: 70_000 })
        );
        let mut m = FrameMeter::new(10);
        assert!(m.feed(&frame(11, false)).is_err());
        assert!(
            m.feed(&frame(1, false)).is_err(),
            "a failed stream stays failed"
        );
    }

    #[test]
    fn a_length_with_the_top_bit_set_is_invalid() {
        let mut h = vec![0x82, 127];
        h.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(
            fed_in_pieces(&h, u64::MAX, 1),
            Err(FrameError::InvalidLength)
        );
        assert_eq!(reference(&h, u64::MAX), Err(FrameError::InvalidLength));
    }

    proptest::proptest! {
        /// However a stream is split, the meter says what the reference says of it whole.
        #[test]
        fn the_meter_agrees_with_the_reference_whatever_the_split(
            stream in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
            cuts in proptest::collection::vec(0usize..400, 0..20),
            max in 0u64..300,
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|c| *c <= stream.len()).collect();
            cuts.sort_unstable();
            let mut m = FrameMeter::new(max);
            let mut streamed = Ok(());
            let mut from = 0;
            for to in cuts.into_iter().chain([stream.len()]) {
                streamed = streamed.and_then(|()| m.feed(&stream[from..to]));
                from = to;
            }
            proptest::prop_assert_eq!(streamed, reference(&stream, max));
        }
    }

    #[test]
    fn only_a_complete_websocket_handshake_is_one() {
        let mut h = HeaderMap::new();
        h.insert("upgrade", "websocket".parse().unwrap());
        h.insert("connection", "keep-alive, Upgrade".parse().unwrap());
        h.insert(
            "sec-websocket-key",
            "dGhlIHNhbXBsZSBub25jZQ==".parse().unwrap(),
        );
        h.insert("sec-websocket-version", "13".parse().unwrap());
        assert!(is_handshake(&Method::GET, true, &h));
        assert!(!is_handshake(&Method::POST, true, &h));
        assert!(!is_handshake(&Method::GET, false, &h), "HTTP/1.0");
        let mut h2c = h.clone();
        h2c.insert("upgrade", "h2c".parse().unwrap());
        assert!(!is_handshake(&Method::GET, true, &h2c));
        let mut no_key = h.clone();
        no_key.remove("sec-websocket-key");
        assert!(!is_handshake(&Method::GET, true, &no_key));
        let mut old = h.clone();
        old.insert("sec-websocket-version", "8".parse().unwrap());
        assert!(!is_handshake(&Method::GET, true, &old));
    }
}
