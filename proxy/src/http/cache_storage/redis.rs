//! The edge cache in Redis, shared by every replica on the store: an entry is one hash under
//! `<prefix>cache:entry:<key hash>` (fields `i` and `h`, pingora's serialized meta, and `b`, the
//! body), written in one `MULTI` with its life as the key's expiry, read with one `HMGET`.
//!
//! Redis keeps sessions and revocations too, so the cache must not be able to fill it: each proxy
//! keeps a ledger of the entries it wrote, bounded by `cache.max_memory_bytes` (least recently
//! written first) and by each entry's life, and deletes from Redis what its ledger evicts. The cache's
//! share of Redis is at most that budget per replica, whatever keys the clients ask for.
//!
//! A Redis failure never fails a request: a lookup error is a miss, a failed write leaves the
//! answer unstored (pingora finishes misses best-effort), and an entry that outlived a restart
//! cannot exist (Redis lost it) or match (the generation in its key is gone too).

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::cache::key::CacheHashKey;
use pingora::cache::storage::{
    HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget, PurgeType,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{CacheKey, CacheMeta, Storage};
use pingora::{Error, ErrorType, Result};
use prometheus::{Histogram, IntCounter};

use super::{entry_life, purged, Buffer, Hit};
use crate::store::{RedisConnector, StoreError};

/// The budget's record of one entry this proxy wrote: its size and life.
#[derive(Clone, Copy)]
struct Written {
    bytes: u32,
    life: Duration,
}

struct Life;

impl moka::Expiry<String, Written> for Life {
    fn expire_after_create(&self, _: &String, v: &Written, _: Instant) -> Option<Duration> {
        Some(v.life)
    }

    fn expire_after_update(
        &self,
        _: &String,
        v: &Written,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.life)
    }
}

/// What a storage operation records: its latency (`edge_proxy_store_duration_seconds`) and
/// failures (`edge_proxy_store_errors_total`).
#[derive(Clone)]
pub(crate) struct Instruments {
    pub read: Histogram,
    pub write: Histogram,
    pub errors: IntCounter,
}

pub(crate) struct RedisStorage {
    redis: Arc<RedisConnector>,
    prefix: String,
    max_object: usize,
    ledger: moka::sync::Cache<String, Written>,
    /// Keys the ledger evicted for size, deleted from Redis with the next write.
    evicted: Arc<Mutex<Vec<String>>>,
    metrics: Instruments,
}

impl RedisStorage {
    /// Entries under `<prefix>cache:entry:`, at most `max_bytes` of them written by this proxy and
    /// none over `max_object` bytes of body.
    pub(crate) fn new(
        redis: Arc<RedisConnector>,
        prefix: &str,
        max_bytes: u64,
        max_object: usize,
        metrics: Instruments,
    ) -> Self {
        let evicted = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&evicted);
        Self {
            redis,
            prefix: format!("{prefix}cache:entry:"),
            max_object,
            ledger: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, w: &Written| w.bytes)
                .expire_after(Life)
                // Plain LRU: every write is admitted and accounted (TinyLFU could refuse one).
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .eviction_listener(move |key: Arc<String>, _, cause| {
                    if cause == moka::notification::RemovalCause::Size {
                        if let Ok(mut keys) = sink.lock() {
                            keys.push(key.as_ref().clone());
                        }
                    }
                })
                .build(),
            evicted,
            metrics,
        }
    }

    fn key(&self, key: &impl CacheHashKey) -> String {
        format!("{}{}", self.prefix, key.combined())
    }

    /// Runs one Redis operation with the store deadline, timed and counted.
    async fn call<T: redis::FromRedisValue>(
        &self,
        timer: &Histogram,
        op: impl FnOnce(&mut redis::Pipeline),
    ) -> Result<T> {
        let started = Instant::now();
        let result = async {
            let mut c = self.redis.conn().await?;
            let mut pipe = redis::pipe();
            op(&mut pipe);
            self.redis.within(pipe.query_async::<T>(&mut c)).await
        }
        .await;
        timer.observe(started.elapsed().as_secs_f64());
        result.map_err(|e: StoreError| {
            self.metrics.errors.inc();
            Error::explain(ErrorType::InternalError, format!("cache storage: {e}"))
        })
    }

    /// Records a write in the ledger; returns the keys it evicted to make room.
    fn account(&self, key: &str, written: Written) -> Vec<String> {
        self.ledger.insert(key.to_owned(), written);
        self.ledger.run_pending_tasks();
        self.evicted
            .lock()
            .map(|mut keys| std::mem::take(&mut *keys))
            .unwrap_or_default()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

struct Miss {
    storage: &'static RedisStorage,
    key: String,
    meta: (Vec<u8>, Vec<u8>),
    life: Duration,
    body: Buffer,
}

#[async_trait]
impl HandleMiss for Miss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        self.body.push(&data)
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let Miss {
            storage,
            key,
            meta,
            life,
            body,
        } = *self;
        let body = body.freeze();
        let size = body.len();
        let bytes = u32::try_from(meta.0.len() + meta.1.len() + size).unwrap_or(u32::MAX);
        let evicted = storage.account(&key, Written { bytes, life });
        // An entry the budget cannot hold at all is not written.
        let fits = !evicted.contains(&key);
        storage
            .call::<()>(&storage.metrics.write, |p| {
                p.atomic();
                for old in &evicted {
                    p.del(old).ignore();
                }
                if !fits {
                    return;
                }
                p.del(&key).ignore();
                p.hset_multiple(
                    &key,
                    &[("i", &meta.0[..]), ("h", &meta.1[..]), ("b", &body[..])],
                )
                .ignore();
                p.pexpire(&key, i64::try_from(millis(life)).unwrap_or(i64::MAX))
                    .ignore();
            })
            .await?;
        Ok(MissFinishType::Created(size))
    }
}

/// Sets an entry's meta and life only if the entry is still there (it may have expired, or been
/// evicted, since its lookup): a meta without a body must never exist.
const UPDATE_META: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'i', ARGV[1], 'h', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

#[async_trait]
impl Storage for RedisStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let k = self.key(key);
        let ((internal, header, body),): ((Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>),) =
            self.call(&self.metrics.read, |p| {
                p.hmget(&k, &["i", "h", "b"]);
            })
            .await?;
        let (Some(internal), Some(header), Some(body)) = (internal, header, body) else {
            return Ok(None);
        };
        let meta = CacheMeta::deserialize(&internal, &header)?;
        let hit: HitHandler = Box::new(Hit {
            body: Some(Bytes::from(body)),
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
            storage: self,
            key: self.key(key),
            meta: meta.serialize()?,
            life: entry_life(meta),
            body: Buffer::new(self.max_object),
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let k = self.key(target.key());
        self.ledger.invalidate(&k);
        let (removed,): (u64,) = self
            .call(&self.metrics.write, |p| {
                p.del(&k);
            })
            .await?;
        Ok(purged(removed > 0))
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        let k = self.key(key);
        let (internal, header) = meta.serialize()?;
        let life = entry_life(meta);
        let (updated,): (u64,) = self
            .call(&self.metrics.write, |p| {
                p.cmd("EVAL")
                    .arg(UPDATE_META)
                    .arg(1)
                    .arg(&k)
                    .arg(&internal)
                    .arg(&header)
                    .arg(millis(life));
            })
            .await?;
        if let Some(w) = self.ledger.get(&k) {
            self.ledger.insert(k, Written { life, ..w });
        }
        Ok(updated == 1)
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}
