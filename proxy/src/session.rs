//! The session allowlist: a token is honoured only while its `jti` is in the store, bound to its `sub`,
//! and issued after the user's last revoke-all (R-JWT-3..6). Two implementations share one contract
//! suite (`tests/proxy/session_contract.rs`): `MemorySessionStore` (one process, the embedded default)
//! and `RedisSessionStore` (shared by every replica, entries expire with their tokens). Tokens of external
//! issuers use a denylist instead (`external_status`, `deny`, `deny_user`), namespaced by issuer.

use async_trait::async_trait;

use crate::clock::UnixSecs;

mod memory;
mod redis;

pub use self::memory::MemorySessionStore;
pub use self::redis::RedisSessionStore;

pub use crate::store::StoreError;

/// What the store says about a presented token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    Active,
    /// Logged out, revoked, expired from the store, bound to another user, or older than a revoke-all.
    Revoked,
}

/// The parts of a token the store looks at.
#[derive(Debug, Clone, Copy)]
pub struct TokenRef<'a> {
    pub jti: &'a str,
    pub sub: &'a str,
    /// Compared with the user's revoke-all time.
    pub iat: UnixSecs,
}

/// Store methods take the current time last, and times as [`UnixSecs`], so units and order cannot
/// be mixed up.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Records a freshly minted token; it expires from the store at `exp`.
    async fn insert(
        &self,
        token: &TokenRef<'_>,
        exp: UnixSecs,
        now: UnixSecs,
    ) -> Result<(), StoreError>;
    /// Is this token still honoured? `iat` is compared with the user's revoke-all time.
    async fn status(
        &self,
        token: &TokenRef<'_>,
        now: UnixSecs,
    ) -> Result<SessionStatus, StoreError>;
    /// Revokes one token (logout). Idempotent.
    async fn revoke(&self, jti: &str, sub: &str) -> Result<(), StoreError>;
    /// Revokes every token of `sub` and refuses any issued before `now`, remembered until `until`
    /// (at least the longest token lifetime from now).
    async fn revoke_all(&self, sub: &str, until: UnixSecs, now: UnixSecs)
        -> Result<(), StoreError>;
    /// Revokes a token by `jti` alone (admin); returns whether it was live.
    async fn revoke_jti(&self, jti: &str) -> Result<bool, StoreError>;
    /// Is this token of external issuer `issuer` still honoured? External tokens are not recorded at
    /// mint time, so this is a denylist: refused when `jti` was denied or `iat` precedes the user's
    /// revoke-all (R-JWT-9).
    async fn external_status(
        &self,
        issuer: &str,
        token: &TokenRef<'_>,
        now: UnixSecs,
    ) -> Result<SessionStatus, StoreError>;
    /// Denies one external token until `until` (at least its `exp`). Idempotent.
    async fn deny(
        &self,
        issuer: &str,
        jti: &str,
        until: UnixSecs,
        now: UnixSecs,
    ) -> Result<(), StoreError>;
    /// Refuses every token of external user `sub` issued at or before `now` (second resolution:
    /// external tokens have no allowlist entry to delete, so the revoking second itself is refused
    /// too), remembered until `until`.
    async fn deny_user(
        &self,
        issuer: &str,
        sub: &str,
        until: UnixSecs,
        now: UnixSecs,
    ) -> Result<(), StoreError>;
    /// A cheap round trip, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;
}
