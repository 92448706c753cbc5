//! `SqliteStore`: the embedded default (a file under `./data/`). The queries are shared with
//! PostgreSQL (`sql.rs`).
//!
//! SQLite has one writer at a time. Its busy handler makes a second writer sleep and retry (1, 2,
//! 5, … 100 ms), which under concurrent writes is a latency tail, not a queue. So writes go through a
//! pool of exactly one connection (`writer`: callers wait in the pool's fair queue, and a write never
//! meets another in-process writer), and reads through a pool of read-only connections (`pool`,
//! `database.max_connections`), which in WAL mode never wait for the writer.
//!
//! Durability: WAL with `synchronous = NORMAL`. A commit is on disk at the next checkpoint rather
//! than at once: a power cut or an OS crash can lose the last commits before it (the database
//! stays consistent); a crash of the process loses nothing. This is SQLite's documented setting for
//! WAL, and the embedded store is for one machine; production runs on PostgreSQL.

use std::path::Path;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::SqlitePool;

use super::StoreError;
use crate::config::PoolConfig;

pub struct SqliteStore {
    pool: SqlitePool,
    writer: Option<SqlitePool>,
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
            .foreign_keys(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            // Another process writing the same file (an operator's sqlite3 shell) is still waited
            // for, not failed with SQLITE_BUSY.
            .busy_timeout(cfg.acquire_timeout);
        // The writer first: it creates the file and runs the migrations the readers depend on. It
        // is kept open, so the WAL and its index stay in place for the read-only connections.
        let writer = super::pool_options::<sqlx::Sqlite>(cfg)
            .max_connections(1)
            .min_connections(1)
            .connect_with(options.clone().create_if_missing(true))
            .await?;
        if migrate {
            sqlx::migrate!("../migrations/sqlite").run(&writer).await?;
        }
        let pool = super::pool_options::<sqlx::Sqlite>(cfg)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self {
            pool,
            writer: Some(writer),
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
