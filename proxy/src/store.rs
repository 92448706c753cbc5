//! What the proxy's stores share: `StoreError` (callers fail closed on it) and `RedisConnector`,
//! lazily made, self-healing Redis connections whose every operation is bounded by the store timeout.
//!
//! A connection is per thread, as nginx and Envoy keep theirs per worker: a multiplexed connection
//! is driven by a task of the runtime that made it, so one shared connection would hand every
//! command to another thread and back (two wake-ups per round trip) whenever the caller runs on a
//! different runtime, as pingora's public service and the admin service do.

use std::cell::RefCell;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::OnceCell;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or did not answer in time; callers fail closed (503).
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// Multiplexed Redis connections, one per thread that uses them, each made on first use. The
/// connection manager reconnects by itself after an outage, so the proxy recovers without a restart.
pub struct RedisConnector {
    client: redis::Client,
    timeout: Duration,
    /// Tells the threads' tables which connector an entry belongs to, and whether it still lives.
    alive: Arc<()>,
    /// Every connection made, for readiness: each is pinged, so a 200 means the connection of
    /// every thread that serves requests is up.
    all: Mutex<Vec<ConnectionManager>>,
}

type Slot = Arc<OnceCell<ConnectionManager>>;

thread_local! {
    /// This thread's connection of each live connector.
    static CONNECTIONS: RefCell<Vec<(Weak<()>, Slot)>> = const { RefCell::new(Vec::new()) };
}

impl RedisConnector {
    pub fn new(url: &SecretString, timeout: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(url.expose_secret())
            .map_err(|e| StoreError::Unavailable(format!("invalid redis url: {:?}", e.kind())))?;
        Ok(Self {
            client,
            timeout,
            alive: Arc::new(()),
            all: Mutex::default(),
        })
    }

    /// This thread's connection (concurrent first uses on a thread wait for one connect).
    pub async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        let slot = CONNECTIONS.with_borrow_mut(|table| {
            if let Some((_, slot)) = table
                .iter()
                .find(|(owner, _)| std::ptr::eq(owner.as_ptr(), Arc::as_ptr(&self.alive)))
            {
                return Arc::clone(slot);
            }
            // Entries of connectors that are gone go with the first new one.
            table.retain(|(owner, _)| owner.strong_count() > 0);
            let slot = Slot::default();
            table.push((Arc::downgrade(&self.alive), Arc::clone(&slot)));
            slot
        });
        if let Some(c) = slot.get() {
            return Ok(c.clone());
        }
        let conn = slot
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(self.timeout)
                    .set_response_timeout(self.timeout)
                    .set_number_of_retries(1)
                    .set_max_delay(1_000);
                tokio::time::timeout(
                    self.timeout * 2,
                    ConnectionManager::new_with_config(self.client.clone(), config),
                )
                .await
                .map_err(|_| StoreError::Unavailable("connect timed out".into()))?
                .map_err(unavailable)
                .inspect(|c| {
                    if let Ok(mut all) = self.all.lock() {
                        all.push(c.clone());
                    }
                })
            })
            .await?;
        Ok(conn.clone())
    }

    /// Pings every connection (this thread's first, made if need be): the readiness check.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.conn().await?;
        let all = self.all.lock().map(|a| a.clone()).unwrap_or_default();
        for mut c in all {
            self.within(redis::cmd("PING").query_async::<String>(&mut c))
                .await?;
        }
        Ok(())
    }

    /// Runs one operation with the store deadline; slow counts as unavailable.
    pub async fn within<T>(
        &self,
        op: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, op)
            .await
            .map_err(|_| StoreError::Unavailable("timed out".into()))?
            .map_err(unavailable)
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}
