//! `PgStore`: the production store on PostgreSQL. The queries are shared with SQLite (`sql.rs`).

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::StoreError;
use crate::config::PoolConfig;

pub struct PgStore {
    pool: PgPool,
    acquire: super::AcquireStats,
    clock: super::sql::Clock,
}

impl PgStore {
    pub async fn connect(
        url: &SecretString,
        cfg: &PoolConfig,
        migrate: bool,
    ) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.expose_secret().parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_connections)
            .min_connections(cfg.min_connections)
            .acquire_timeout(cfg.acquire_timeout)
            .idle_timeout(cfg.idle_timeout)
            .max_lifetime(cfg.max_lifetime)
            .test_before_acquire(cfg.test_before_acquire)
            .connect_with(options)
            .await?;
        if migrate {
            sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        }
        Ok(Self::from_pool(pool))
    }

    /// Wraps an existing pool (tests create one per database).
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            acquire: super::AcquireStats::default(),
            clock: super::sql::system_clock(),
        }
    }

    /// The same store reading the time from `clock` (tests).
    pub fn with_clock(mut self, clock: super::Clock) -> Self {
        self.clock = clock;
        self
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../migrations/postgres")
            .run(&self.pool)
            .await?;
        Ok(())
    }
}

super::sql::impl_sql_store!(
    PgStore,
    sqlx::Postgres,
    super::super::sql::pg_stamp,
    time::OffsetDateTime,
    "EXPLAIN ",
    "QUERY PLAN"
);
