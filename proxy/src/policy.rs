//! Pure request policy: routing, CORS, inbound identity headers, the client address and API
//! versions, WebSocket frames. Nothing here knows pingora (the `layering` test fails if it does), so every rule is
//! unit-tested without a server.

pub(crate) mod caching;
pub(crate) mod client;
pub(crate) mod cors;
pub(crate) mod inbound;
pub(crate) mod routing;
pub(crate) mod versioning;
pub(crate) mod websocket;
