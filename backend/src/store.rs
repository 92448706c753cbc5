//! Persistence behind one `Store` trait, with a PostgreSQL (`PgStore`) and a SQLite (`SqliteStore`)
//! implementation. Both are generated from the same SQL in `store/sql.rs`, so they cannot drift; the
//! contract suite in `tests/api/store_contract.rs` runs against both.
//!
//! Every method that touches user data takes the owner's id and scopes the query by it: a row of
//! another user is indistinguishable from a missing row.

use async_trait::async_trait;
use uuid::Uuid;

use crate::config::{DatabaseUrl, PoolConfig};
use crate::domain::{
    Category, CategoryName, Email, NewTodo, Page, Todo, TodoFilter, TodoPatch, User,
    UserCredentials,
};

mod instrumented;
mod postgres;
mod sql;
mod sqlite;

pub use instrumented::InstrumentedStore;
pub use postgres::PgStore;
pub use sql::{system_clock, Clock};
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint was violated (e.g. the email is registered already).
    #[error("already exists")]
    Conflict,
    /// A referenced category does not exist or belongs to someone else.
    #[error("referenced category does not exist")]
    InvalidReference,
    /// Moving a category under itself or one of its descendants.
    #[error("a category cannot be moved under itself or its descendants")]
    Cycle,
    /// Deleting a category that still has subcategories.
    #[error("category has subcategories")]
    HasChildren,
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Pool occupancy and acquire statistics, exported as `todo_backend_db_pool_connections{state}`,
/// `todo_backend_db_pool_acquires_total` and `todo_backend_db_pool_acquire_wait_seconds_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
    /// Connections handed out since start, and the total time callers waited for them.
    pub acquires: u64,
    pub acquire_wait_ns: u64,
}

/// Running totals of pool acquires and their wait, shared by the SQL stores (lock-free).
#[derive(Debug, Default)]
pub struct AcquireStats {
    count: std::sync::atomic::AtomicU64,
    wait_ns: std::sync::atomic::AtomicU64,
}

impl AcquireStats {
    pub fn record(&self, waited: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        self.count.fetch_add(1, Relaxed);
        self.wait_ns.fetch_add(
            u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX),
            Relaxed,
        );
    }

    pub fn totals(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.count.load(Relaxed), self.wait_ns.load(Relaxed))
    }
}

/// Versions in the user's row, each bumped in the same transaction as every write that changes what
/// some GET answers (DESIGN.md 7.2): so an `ETag` built from them is right on every replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataVersions {
    /// Todos: every todo write, and a category delete (its todos become uncategorised).
    pub todos: i64,
    /// The category tree: every category write.
    pub tree: i64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A cheap round trip, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;
    fn pool_stats(&self) -> PoolStats;

    async fn create_user(&self, email: &Email, password_hash: &str) -> Result<User, StoreError>;
    async fn user(&self, id: Uuid) -> Result<Option<User>, StoreError>;
    async fn user_credentials(&self, email: &Email) -> Result<Option<UserCredentials>, StoreError>;
    /// The versions of what a user's GETs answer (`None`: no such user), for `ETag`s: one indexed
    /// read, so a `304` costs no list.
    async fn data_versions(&self, owner: Uuid) -> Result<Option<DataVersions>, StoreError>;

    async fn create_todo(&self, owner: Uuid, todo: &NewTodo) -> Result<Todo, StoreError>;
    async fn todo(&self, owner: Uuid, id: Uuid) -> Result<Option<Todo>, StoreError>;
    async fn list_todos(&self, owner: Uuid, filter: &TodoFilter) -> Result<Page<Todo>, StoreError>;
    async fn update_todo(
        &self,
        owner: Uuid,
        id: Uuid,
        patch: &TodoPatch,
    ) -> Result<Option<Todo>, StoreError>;
    async fn delete_todo(&self, owner: Uuid, id: Uuid) -> Result<bool, StoreError>;

    async fn create_category(
        &self,
        owner: Uuid,
        name: &CategoryName,
        parent: Option<Uuid>,
    ) -> Result<Category, StoreError>;
    async fn categories(&self, owner: Uuid) -> Result<Vec<Category>, StoreError>;
    /// Renames and/or moves; `parent: Some(None)` moves to the top level.
    async fn update_category(
        &self,
        owner: Uuid,
        id: Uuid,
        name: Option<&CategoryName>,
        parent: Option<Option<Uuid>>,
    ) -> Result<Option<Category>, StoreError>;
    /// Refuses (`HasChildren`) while subcategories exist; todos in it become uncategorised.
    async fn delete_category(&self, owner: Uuid, id: Uuid) -> Result<bool, StoreError>;
}

/// How long a pooled connection may sit idle before it is pinged on acquire
/// (`database.test_before_acquire`). A connection used moments ago is handed out as it is, which is
/// HikariCP's rule (`aliveBypassWindowMs`, 500 ms): a ping per acquire is a round trip per request,
/// and a connection that died in between fails its query like one that dies after the ping.
pub const IDLE_TEST_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// The pool settings of `cfg` for either database, with the idle test above.
fn pool_options<DB: sqlx::Database>(cfg: &PoolConfig) -> sqlx::pool::PoolOptions<DB> {
    let test = cfg.test_before_acquire;
    sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(cfg.max_connections)
        .min_connections(cfg.min_connections)
        .acquire_timeout(cfg.acquire_timeout)
        .idle_timeout(cfg.idle_timeout)
        .max_lifetime(cfg.max_lifetime)
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            Box::pin(async move {
                if !test || meta.idle_for < IDLE_TEST_AFTER {
                    return Ok(true);
                }
                match sqlx::Connection::ping(conn).await {
                    Ok(()) => Ok(true),
                    Err(error) => {
                        // The pool closes it and hands out another (or connects anew).
                        tracing::info!(%error, "an idle database connection failed its ping");
                        Ok(false)
                    }
                }
            })
        })
}

/// Connects to the configured database and runs migrations when `migrate` is set.
pub async fn connect(
    url: &DatabaseUrl,
    pool: &PoolConfig,
    migrate: bool,
) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    Ok(match url {
        DatabaseUrl::Postgres(u) => std::sync::Arc::new(PgStore::connect(u, pool, migrate).await?),
        DatabaseUrl::Sqlite(path) => {
            std::sync::Arc::new(SqliteStore::connect(path, pool, migrate).await?)
        }
    })
}
