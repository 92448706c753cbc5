//! Cache generations (DESIGN.md 7.2, issue 14): one value per cache scope (a user's entries on a
//! route, or a shared route's entries). The edge cache's key holds its scope's generation, so a new
//! generation makes every replica's next read of that scope miss, and the entries of the old one are
//! never read again (they age out of storage).
//!
//! A generation is a random value, not a counter from zero: a scope whose value is lost (a Redis
//! restart, an expired key) gets a fresh random one on its next read, so an entry stored before the
//! loss can never match again. Memory (one proxy) or Redis (shared by every replica: a write through
//! one replica invalidates the others' entries).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::store::{RedisConnector, StoreError};

/// How long an untouched scope keeps its generation (far longer than any entry can live: TTL and
/// stale-while-revalidate are capped below this at config load).
pub const GENERATION_TTL: Duration = Duration::from_secs(24 * 3600);

#[async_trait]
pub trait GenerationStore: Send + Sync + 'static {
    /// The scope's current generation (a fresh one if it has none).
    async fn current(&self, scope: &str) -> Result<u64, StoreError>;
    /// Gives every scope a new generation.
    async fn bump(&self, scopes: &[String]) -> Result<(), StoreError>;
}

fn fresh() -> u64 {
    rand::random()
}

/// Generations of one proxy process.
pub struct MemoryGenerations {
    scopes: moka::sync::Cache<String, u64>,
}

impl MemoryGenerations {
    pub fn new() -> Self {
        Self {
            scopes: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_idle(GENERATION_TTL)
                .build(),
        }
    }
}

impl Default for MemoryGenerations {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl GenerationStore for MemoryGenerations {
    async fn current(&self, scope: &str) -> Result<u64, StoreError> {
        Ok(self.scopes.get_with_by_ref(scope, fresh))
    }

    async fn bump(&self, scopes: &[String]) -> Result<(), StoreError> {
        for s in scopes {
            self.scopes.insert(s.clone(), fresh());
        }
        Ok(())
    }
}

/// Generations in Redis, under `<prefix>cache:gen:<scope>`: a read is one `SET … NX GET` (the
/// current value, or a fresh one set atomically when there is none), a bump one pipelined `SET` per
/// scope.
pub struct RedisGenerations {
    redis: Arc<RedisConnector>,
    prefix: String,
}

impl RedisGenerations {
    pub fn with_connector(redis: Arc<RedisConnector>, prefix: &str) -> Self {
        Self {
            redis,
            prefix: format!("{prefix}cache:gen:"),
        }
    }

    fn key(&self, scope: &str) -> String {
        format!("{}{scope}", self.prefix)
    }
}

#[async_trait]
impl GenerationStore for RedisGenerations {
    async fn current(&self, scope: &str) -> Result<u64, StoreError> {
        let mut c = self.redis.conn().await?;
        let candidate = fresh();
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(scope))
            .arg(candidate)
            .arg("NX")
            .arg("GET")
            .arg("EX")
            .arg(GENERATION_TTL.as_secs());
        let old: Option<u64> = self.redis.within(cmd.query_async(&mut c)).await?;
        Ok(old.unwrap_or(candidate))
    }

    async fn bump(&self, scopes: &[String]) -> Result<(), StoreError> {
        if scopes.is_empty() {
            return Ok(());
        }
        let mut c = self.redis.conn().await?;
        let mut pipe = redis::pipe();
        for s in scopes {
            pipe.cmd("SET")
                .arg(self.key(s))
                .arg(fresh())
                .arg("EX")
                .arg(GENERATION_TTL.as_secs())
                .ignore();
        }
        self.redis.within(pipe.query_async::<()>(&mut c)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scope_keeps_its_generation_until_bumped() {
        let g = MemoryGenerations::new();
        let a = g.current("u:todos:alice").await.unwrap();
        assert_eq!(g.current("u:todos:alice").await.unwrap(), a);
        let b = g.current("u:todos:bob").await.unwrap();
        g.bump(&["u:todos:alice".into()]).await.unwrap();
        assert_ne!(g.current("u:todos:alice").await.unwrap(), a);
        assert_eq!(
            g.current("u:todos:bob").await.unwrap(),
            b,
            "other scopes keep theirs"
        );
    }
}
