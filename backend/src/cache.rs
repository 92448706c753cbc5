//! In-process caches of data read far more often than written (DESIGN.md 7.2): the category tree.
//!
//! An entry is keyed by the version it was read at (the user's `tree_version`, which a conditional
//! GET reads first anyway), so a write through any replica makes the next read on every replica miss:
//! invalidation needs no message between replicas and cannot be lost. A miss is single-flight (moka's
//! `try_get_with`: concurrent misses on one key wait for one query). The TTL is the safety net that
//! bounds how long entries of versions nobody reads any more stay in memory.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use prometheus::IntCounter;
use uuid::Uuid;

use crate::domain::CategoryNode;
use crate::error::ApiError;
use crate::store::StoreError;

/// Trees kept, at most (a tree is a few KiB for a typical user).
const TREES: u64 = 10_000;
/// How long an entry lives, read or not.
const TTL: Duration = Duration::from_secs(300);

/// Category trees by (user, tree version).
pub struct TreeCache {
    trees: Cache<(Uuid, i64), Arc<Vec<CategoryNode>>>,
    hits: IntCounter,
    misses: IntCounter,
}

impl TreeCache {
    /// `hits` and `misses` count lookups (`todo_backend_cache_requests_total{cache="category_tree"}`).
    pub fn new(hits: IntCounter, misses: IntCounter) -> Self {
        Self {
            trees: Cache::builder()
                .max_capacity(TREES)
                .time_to_live(TTL)
                .build(),
            hits,
            misses,
        }
    }

    /// The tree of `user` at `version`, loaded by `load` when no replica-independent copy of it is
    /// here yet. A waiter whose leader's load failed gets 503: the database failed just now.
    pub async fn get_or_load<F>(
        &self,
        user: Uuid,
        version: i64,
        load: F,
    ) -> Result<Arc<Vec<CategoryNode>>, ApiError>
    where
        F: std::future::Future<Output = Result<Vec<CategoryNode>, StoreError>>,
    {
        let mut loaded = false;
        let result = self
            .trees
            .try_get_with((user, version), async {
                loaded = true;
                load.await.map(Arc::new)
            })
            .await;
        if loaded { &self.misses } else { &self.hits }.inc();
        result.map_err(|e| Arc::try_unwrap(e).map_or(ApiError::Unavailable, ApiError::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn cache() -> TreeCache {
        let c = || IntCounter::new("c", "c").unwrap();
        TreeCache::new(c(), c())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_misses_load_once_and_a_new_version_loads_again() {
        let cache = Arc::new(cache());
        let loads = Arc::new(AtomicUsize::new(0));
        let user = Uuid::from_u128(1);
        let load = |loads: Arc<AtomicUsize>| async move {
            loads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(Vec::new())
        };
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (cache, l) = (Arc::clone(&cache), Arc::clone(&loads));
                tokio::spawn(async move { cache.get_or_load(user, 1, load(l)).await.is_ok() })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap());
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1, "single flight");
        assert_eq!((cache.misses.get(), cache.hits.get()), (1, 49));
        cache
            .get_or_load(user, 2, load(Arc::clone(&loads)))
            .await
            .unwrap();
        assert_eq!(
            loads.load(Ordering::SeqCst),
            2,
            "a write (new version) misses"
        );
        cache
            .get_or_load(Uuid::from_u128(2), 2, load(Arc::clone(&loads)))
            .await
            .unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 3, "per user");
    }

    #[tokio::test]
    async fn a_failed_load_is_not_cached() {
        let cache = cache();
        let user = Uuid::from_u128(1);
        let failed = cache
            .get_or_load(user, 1, async {
                Err(StoreError::Database(sqlx::Error::PoolClosed))
            })
            .await;
        assert!(failed.is_err());
        let ok = cache.get_or_load(user, 1, async { Ok(Vec::new()) }).await;
        assert!(ok.is_ok(), "the next read tries again");
    }
}
