//! Pure request policy: routing, CORS, inbound identity headers and the client address. Nothing here
//! knows pingora (the `layering` test fails if it does), so every rule is unit-tested without a server.

pub(crate) mod client;
pub(crate) mod cors;
pub(crate) mod inbound;
pub(crate) mod routing;
