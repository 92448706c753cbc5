//! `PgStore`: the production store on PostgreSQL. The queries are shared with SQLite (`sql.rs`).

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;

use super::StoreError;
use crate::config::PoolConfig;

pub struct PgStore {
    pool: PgPool,
    /// Always `None`: PostgreSQL takes concurrent writers, so reads and writes share `pool`.
    writer: Option<PgPool>,
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
        let pool = super::pool_options::<sqlx::Postgres>(cfg)
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
            writer: None,
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
