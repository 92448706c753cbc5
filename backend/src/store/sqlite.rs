//! `SqliteStore`: the embedded default (a file under `./data/`). The queries are shared with
//! PostgreSQL (`sql.rs`).

use std::path::Path;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::SqlitePool;

use super::StoreError;
use crate::config::PoolConfig;

pub struct SqliteStore {
    pool: SqlitePool,
    acquire: super::AcquireStats,
    clock: super::sql::Clock,
}

impl SqliteStore {
    pub async fn connect(path: &Path, cfg: &PoolConfig, migrate: bool) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .foreign_keys(true)
            // WAL lets readers run while one writer commits; busy_timeout queues writers instead of
            // failing them with SQLITE_BUSY.
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(cfg.acquire_timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(cfg.max_connections)
            .min_connections(cfg.min_connections)
            .acquire_timeout(cfg.acquire_timeout)
            .idle_timeout(cfg.idle_timeout)
            .max_lifetime(cfg.max_lifetime)
            .test_before_acquire(cfg.test_before_acquire)
            .connect_with(options)
            .await?;
        if migrate {
            sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        }
        Ok(Self {
            pool,
            acquire: super::AcquireStats::default(),
            clock: super::sql::system_clock(),
        })
    }

    /// The same store reading the time from `clock` (tests).
    pub fn with_clock(mut self, clock: super::Clock) -> Self {
        self.clock = clock;
        self
    }
}

super::sql::impl_sql_store!(
    SqliteStore,
    sqlx::Sqlite,
    super::super::sql::sqlite_stamp,
    String,
    "EXPLAIN QUERY PLAN ",
    "detail"
);
