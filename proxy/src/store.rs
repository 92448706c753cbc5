//! What the proxy's stores share: `StoreError` (callers fail closed on it) and `RedisConnector`, a
//! lazily made, self-healing Redis connection whose every operation is bounded by the store timeout.

use std::future::Future;
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

/// One multiplexed Redis connection, made on first use. The connection manager reconnects by itself
/// after an outage, so the proxy recovers without a restart.
pub struct RedisConnector {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    timeout: Duration,
}

impl RedisConnector {
    pub fn new(url: &SecretString, timeout: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(url.expose_secret())
            .map_err(|e| StoreError::Unavailable(format!("invalid redis url: {:?}", e.kind())))?;
        Ok(Self {
            client,
            conn: OnceCell::new(),
            timeout,
        })
    }

    pub async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        let conn = self
            .conn
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
            })
            .await?;
        Ok(conn.clone())
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
