//! A shadow check of chunked request framing on the raw bytes (SECURITY.md R-HTTP table: chunk lines
//! of at most 1 KiB of extensions; R-HTTP-1: no bare LF). pingora decodes chunks before any filter
//! sees them and accepts extensions up to 8 KiB (only when a chunk line is split across reads), so
//! `GuardedStream` runs every byte of a chunked body through this scanner as it is read, and the
//! gateway refuses the request (400, connection closed) once it reports a violation.
//!
//! It only watches; pingora still does the real framing, so a disagreement can only refuse a
//! request, never let one through differently.

/// Longest chunk line accepted: a size (16 hex digits at most) plus 1 KiB of extensions.
pub(crate) const MAX_CHUNK_LINE: usize = 16 + 1024;
/// Longest trailer line (the same as a header line).
const MAX_TRAILER_LINE: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a chunk-size line: bytes so far, the size parsed so far, whether hex digits ended.
    Size {
        len: usize,
        size: u64,
        digits_done: bool,
        cr: bool,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    Trailer {
        len: usize,
        cr: bool,
    },
    Done,
    Bad(&'static str),
}

#[derive(Debug, Clone)]
pub(crate) struct ChunkScanner {
    state: State,
}

impl Default for ChunkScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkScanner {
    pub(crate) fn new() -> Self {
        Self {
            state: State::Size {
                len: 0,
                size: 0,
                digits_done: false,
                cr: false,
            },
        }
    }

    /// Why the body was refused, if it was.
    pub(crate) fn violation(&self) -> Option<&'static str> {
        match self.state {
            State::Bad(why) => Some(why),
            _ => None,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, State::Done | State::Bad(_))
    }

    /// Feeds the next bytes of the body as they arrive.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Done | State::Bad(_) => return,
                State::Data { left } => {
                    let take = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    *left -= take as u64;
                    bytes = &bytes[take..];
                    if *left == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                _ => {}
            }
            let b = bytes[0];
            bytes = &bytes[1..];
            self.state = step(self.state, b);
        }
    }
}

fn step(state: State, b: u8) -> State {
    match state {
        State::Size {
            len,
            size,
            digits_done,
            cr,
        } => size_line(len, size, digits_done, cr, b),
        State::DataCr if b == b'\r' => State::DataLf,
        State::DataLf if b == b'\n' => State::Size {
            len: 0,
            size: 0,
            digits_done: false,
            cr: false,
        },
        State::DataCr | State::DataLf => State::Bad("chunk data not followed by CRLF"),
        State::Trailer { len, cr } => trailer_line(len, cr, b),
        other => other,
    }
}

/// One byte of a chunk-size line (`<hex size>[;extensions]CRLF`).
fn size_line(len: usize, size: u64, digits_done: bool, cr: bool, b: u8) -> State {
    if cr {
        return if b != b'\n' {
            State::Bad("bare CR in a chunk line")
        } else if len == 0 {
            State::Bad("empty chunk size")
        } else if size == 0 {
            State::Trailer { len: 0, cr: false }
        } else {
            State::Data { left: size }
        };
    }
    let more = |size, digits_done| State::Size {
        len: len + 1,
        size,
        digits_done,
        cr: false,
    };
    match b {
        b'\r' => State::Size {
            len,
            size,
            digits_done,
            cr: true,
        },
        b'\n' => State::Bad("bare LF in a chunk line"),
        _ if len + 1 > MAX_CHUNK_LINE => State::Bad("chunk extensions over 1 KiB"),
        _ if !digits_done && b.is_ascii_hexdigit() => {
            let digit = u64::from(char::from(b).to_digit(16).unwrap_or(0));
            match size.checked_mul(16).and_then(|s| s.checked_add(digit)) {
                Some(size) => more(size, false),
                None => State::Bad("chunk size overflows"),
            }
        }
        _ if len == 0 => State::Bad("chunk line without a size"),
        _ => more(size, true),
    }
}

/// One byte of a trailer section (lines up to an empty line).
fn trailer_line(len: usize, cr: bool, b: u8) -> State {
    if cr {
        return if b != b'\n' {
            State::Bad("bare CR in a trailer")
        } else if len == 0 {
            State::Done
        } else {
            State::Trailer { len: 0, cr: false }
        };
    }
    match b {
        b'\r' => State::Trailer { len, cr: true },
        b'\n' => State::Bad("bare LF in a trailer"),
        _ if len + 1 > MAX_TRAILER_LINE => State::Bad("trailer line over 8 KiB"),
        _ => State::Trailer {
            len: len + 1,
            cr: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(parts: &[&[u8]]) -> ChunkScanner {
        let mut s = ChunkScanner::new();
        for p in parts {
            s.feed(p);
        }
        s
    }

    #[test]
    fn well_formed_bodies_pass_however_they_are_split() {
        let body =
            b"5\r\nhello\r\n1a;name=value\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\n";
        for split in 0..body.len() {
            let s = scan(&[&body[..split], &body[split..]]);
            assert!(s.is_done() && s.violation().is_none(), "split at {split}");
        }
        let ext = format!("4;{}\r\nabcd\r\n0\r\n\r\n", "e".repeat(1000));
        assert!(scan(&[ext.as_bytes()]).violation().is_none());
    }

    #[test]
    fn long_extensions_and_bare_line_ends_are_violations() {
        let long = format!("4;{}\r\nabcd\r\n0\r\n\r\n", "e".repeat(1100));
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("long extension", long.into_bytes()),
            ("bare LF after size", b"4\nabcd\r\n0\r\n\r\n".to_vec()),
            ("bare LF after data", b"4\r\nabcd\n0\r\n\r\n".to_vec()),
            ("bare LF in trailer", b"0\r\nX-T: 1\n\r\n".to_vec()),
            ("no size", b";ext\r\n".to_vec()),
            ("overflow", b"fffffffffffffffffff\r\n".to_vec()),
            ("data too long", b"2\r\nabc\r\n".to_vec()),
        ];
        for (name, bytes) in cases {
            assert!(scan(&[&bytes]).violation().is_some(), "{name}");
        }
    }
}
