//! Fuzzes the WebSocket frame meter (`edge-proxy`'s `policy::websocket::FrameMeter`), which reads
//! the upgraded bytes of both directions of every WebSocket connection: fed any stream, split at any
//! points, it never panics and gives the answer the plain whole-stream reference gives (the same
//! frame refused for the same reason, or none).
//!
//! The input is: two bytes of frame cap (little endian), one seed for the split points, the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../proxy/src/policy/websocket.rs"]
#[allow(dead_code)] // `is_handshake` is the proxy tests' business
mod websocket;

fuzz_target!(|data: &[u8]| {
    let [a, b, seed, stream @ ..] = data else {
        return;
    };
    let max = u64::from(u16::from_le_bytes([*a, *b]));
    let mut meter = websocket::FrameMeter::new(max);
    let (mut at, mut state) = (0usize, u32::from(*seed) | 1);
    let mut streamed = Ok(());
    while at < stream.len() {
        // A small xorshift picks each piece's length (1 to 16 bytes).
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let to = (at + 1 + (state % 16) as usize).min(stream.len());
        streamed = streamed.and_then(|()| meter.feed(&stream[at..to]));
        at = to;
    }
    assert_eq!(streamed, websocket::reference(stream, max));
});
