//! Proxy integration tests: the real `Gateway` on real sockets in front of a recording upstream.
//! Redis tests need `REDIS_URL` (skipped without it, failing instead when `CI` is set); each uses its
//! own key prefix and removes its keys afterwards.

// Test code: a panic (unwrap) is the failure report; helpers are `pub` for sibling modules.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod caching;
mod connections;
mod cors;
mod framing;
mod gateway;
mod harness;
mod issuers;
mod layering;
mod limits;
mod metrics;
mod pools;
mod session_contract;
mod throttle;
mod throttle_contract;
mod tokens;
mod versioning;
mod websocket;
