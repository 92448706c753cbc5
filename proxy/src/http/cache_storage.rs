//! The edge cache's in-process storage: pingora-cache's `Storage` on a moka cache bounded by bytes
//! (least recently used entries go first) and by age (`policy::caching::MAX_ENTRY_LIFE`).
//! pingora-cache's own `MemCache` is for its tests only (unbounded, no eviction).
//!
//! An entry is written whole: readers never see a partial body (a concurrent miss waits on the cache
//! lock instead). Freshness is pingora's business (it is in the stored `CacheMeta`); this only keeps
//! bytes.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::cache::key::CacheHashKey as _;
use pingora::cache::storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget,
    PurgeType,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{CacheKey, CacheMeta, Storage};
use pingora::{Error, ErrorType, Result};

use crate::policy::caching::MAX_ENTRY_LIFE;

/// One stored answer: pingora's serialized meta (internal, header) and the body.
struct Stored {
    meta: (Vec<u8>, Vec<u8>),
    body: Bytes,
}

impl Stored {
    fn weight(&self) -> u32 {
        let n = self.meta.0.len() + self.meta.1.len() + self.body.len();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

pub(crate) struct MemoryStorage {
    entries: moka::sync::Cache<String, Arc<Stored>>,
    max_object: usize,
}

impl MemoryStorage {
    /// At most `max_bytes` of entries, none over `max_object` bytes of body.
    pub(crate) fn new(max_bytes: u64, max_object: usize) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, v: &Arc<Stored>| v.weight())
                .time_to_live(MAX_ENTRY_LIFE)
                .build(),
            max_object,
        }
    }
}

struct Hit {
    body: Option<Bytes>,
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

struct Miss {
    key: String,
    meta: (Vec<u8>, Vec<u8>),
    body: BytesMut,
    max_object: usize,
    entries: moka::sync::Cache<String, Arc<Stored>>,
}

#[async_trait]
impl HandleMiss for Miss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        if self.body.len() + data.len() > self.max_object {
            // pingora stops admitting the asset; the answer itself still streams to the client.
            return Error::e_explain(
                ErrorType::InternalError,
                "answer over cache.max_object_bytes",
            );
        }
        self.body.extend_from_slice(&data);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let stored = Arc::new(Stored {
            meta: self.meta,
            body: self.body.freeze(),
        });
        let size = stored.body.len();
        self.entries.insert(self.key, stored);
        Ok(MissFinishType::Created(size))
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let Some(stored) = self.entries.get(&key.combined()) else {
            return Ok(None);
        };
        let meta = CacheMeta::deserialize(&stored.meta.0, &stored.meta.1)?;
        let hit: HitHandler = Box::new(Hit {
            body: Some(stored.body.clone()),
        });
        Ok(Some((meta, hit)))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        Ok(Box::new(Miss {
            key: key.combined(),
            meta: meta.serialize()?,
            body: BytesMut::new(),
            max_object: self.max_object,
            entries: self.entries.clone(),
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let removed = self.entries.remove(&target.key().combined());
        Ok(if removed.is_some() {
            PurgeOutcome::Purged(None)
        } else {
            PurgeOutcome::NotFound
        })
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        let hash = key.combined();
        let Some(old) = self.entries.get(&hash) else {
            return Ok(false);
        };
        let updated = Arc::new(Stored {
            meta: meta.serialize()?,
            body: old.body.clone(),
        });
        self.entries.insert(hash, updated);
        Ok(true)
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}
