//! The edge cache's storages (pingora-cache's `Storage`): in process (`memory`) or in Redis
//! (`redis`, shared by every replica on the store). What they share lives here: the hit handler
//! that serves a whole stored body, the miss buffer bounded by `cache.max_object_bytes`, and how
//! long an entry is kept.
//!
//! An entry is written whole, when its body ends: readers never see a partial body (a concurrent
//! miss waits on the cache lock instead), and a storage failure on write only means the answer is
//! not stored (pingora finishes the miss best-effort). Freshness is pingora's business (it is in the
//! stored `CacheMeta`); the storages only keep bytes, for at most the entry's life.

pub(crate) mod memory;
pub(crate) mod redis;

use std::any::Any;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::cache::storage::{HandleHit, PurgeOutcome};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{CacheKey, CacheMeta, Storage};
use pingora::{Error, ErrorType, Result};

use crate::policy::caching::MAX_ENTRY_LIFE;

/// How long a storage keeps an entry: while it is fresh or may be served stale, never longer than
/// `MAX_ENTRY_LIFE`, and at least a second (pingora revalidates an expired entry in place).
pub(crate) fn entry_life(meta: &CacheMeta) -> Duration {
    let fresh = meta
        .fresh_until()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    let stale = meta
        .stale_while_revalidate_sec()
        .max(meta.stale_if_error_sec());
    (fresh + Duration::from_secs(u64::from(stale))).clamp(Duration::from_secs(1), MAX_ENTRY_LIFE)
}

/// What a purge says it did.
pub(crate) fn purged(found: bool) -> PurgeOutcome {
    if found {
        PurgeOutcome::Purged(None)
    } else {
        PurgeOutcome::NotFound
    }
}

/// A miss's body as it arrives, refused past `max` bytes.
pub(crate) struct Buffer {
    body: BytesMut,
    max: usize,
}

impl Buffer {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            body: BytesMut::new(),
            max,
        }
    }

    pub(crate) fn push(&mut self, data: &[u8]) -> Result<()> {
        if self.body.len() + data.len() > self.max {
            // pingora stops admitting the asset; the answer itself still streams to the client.
            return Error::e_explain(
                ErrorType::InternalError,
                "answer over cache.max_object_bytes",
            );
        }
        self.body.extend_from_slice(data);
        Ok(())
    }

    pub(crate) fn freeze(self) -> Bytes {
        self.body.freeze()
    }
}

/// Serves a stored body in one piece.
pub(crate) struct Hit {
    pub(crate) body: Option<Bytes>,
}

#[async_trait]
impl HandleHit for Hit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        Ok(self.body.take())
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}
