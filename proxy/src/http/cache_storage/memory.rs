//! The edge cache in process: a moka cache bounded by bytes (least recently used entries go first)
//! and by each entry's life. pingora-cache's own `MemCache` is for its tests only (unbounded, no
//! eviction).

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::cache::key::CacheHashKey as _;
use pingora::cache::storage::{
    HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget, PurgeType,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{CacheKey, CacheMeta, Storage};
use pingora::Result;

use super::{entry_life, purged, Buffer, Hit};

/// One stored answer: pingora's serialized meta (internal, header), the body, and how long it is
/// kept.
struct Stored {
    meta: (Vec<u8>, Vec<u8>),
    body: Bytes,
    life: Duration,
}

impl Stored {
    fn weight(&self) -> u32 {
        let n = self.meta.0.len() + self.meta.1.len() + self.body.len();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// Each entry expires at the end of its own life.
struct Life;

impl moka::Expiry<String, Arc<Stored>> for Life {
    fn expire_after_create(&self, _: &String, v: &Arc<Stored>, _: Instant) -> Option<Duration> {
        Some(v.life)
    }

    fn expire_after_update(
        &self,
        _: &String,
        v: &Arc<Stored>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.life)
    }
}

type Entries = moka::sync::Cache<String, Arc<Stored>>;

pub(crate) struct MemoryStorage {
    entries: Entries,
    max_object: usize,
}

impl MemoryStorage {
    /// At most `max_bytes` of entries, none over `max_object` bytes of body.
    pub(crate) fn new(max_bytes: u64, max_object: usize) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, v: &Arc<Stored>| v.weight())
                .expire_after(Life)
                .build(),
            max_object,
        }
    }
}

struct Miss {
    key: String,
    meta: (Vec<u8>, Vec<u8>),
    life: Duration,
    body: Buffer,
    entries: Entries,
}

#[async_trait]
impl HandleMiss for Miss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        self.body.push(&data)
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let stored = Arc::new(Stored {
            meta: self.meta,
            body: self.body.freeze(),
            life: self.life,
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
            life: entry_life(meta),
            body: Buffer::new(self.max_object),
            entries: self.entries.clone(),
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        Ok(purged(
            self.entries.remove(&target.key().combined()).is_some(),
        ))
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
            life: entry_life(meta),
        });
        self.entries.insert(hash, updated);
        Ok(true)
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}
