//! The SQL behind both stores, written once. `impl_sql_store!(Type, Db, stamp, StampType)` implements `Store` for
//! a struct with a `pool` field of `sqlx::Pool<Db>` and a `clock` field; `stamp` turns a time into the
//! value bound for a timestamp column. Only portable SQL is used (numbered parameters in order of
//! first use, `RETURNING`, `WITH RECURSIVE`), so PostgreSQL and SQLite run the same text.
//!
//! Order means the same on both databases:
//! - SQLite keeps timestamps as text, so they are written fixed-width (`sqlite_stamp`: always six
//!   fraction digits, UTC), where text order is time order; PostgreSQL has `TIMESTAMPTZ`.
//! - Titles sort case-insensitively by `lower(title)`, then by the title itself and the id. The
//!   columns are `COLLATE "C"` on PostgreSQL (migration 0002), where, as in SQLite, comparison is by
//!   code point and `lower()` folds ASCII letters only.

use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::domain::{Category, Todo, User, UserCredentials};

/// Where a store reads the time for `created_at` and `updated_at` (tests inject their own).
pub type Clock = std::sync::Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    std::sync::Arc::new(OffsetDateTime::now_utc)
}

/// `t` at microsecond precision in UTC, the precision both databases store.
pub(super) fn to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

/// A timestamp as PostgreSQL stores it (`TIMESTAMPTZ`).
pub(super) fn pg_stamp(t: OffsetDateTime) -> OffsetDateTime {
    t
}

/// A timestamp as SQLite stores it: fixed-width RFC 3339 text in UTC with six fraction digits, so
/// that comparing the text compares the times (sqlx's own encoding drops trailing zeros, and
/// `…:00.5Z` then sorts after `…:00.500001Z`).
pub(super) fn sqlite_stamp(t: OffsetDateTime) -> String {
    let t = to_micros(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

fn split_roles(roles: &str) -> Vec<String> {
    roles
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: Uuid,
    email: String,
    password_hash: String,
    roles: String,
    disabled: bool,
    created_at: OffsetDateTime,
}

impl UserRow {
    pub(super) fn into_user(self) -> User {
        User {
            id: self.id,
            email: self.email,
            roles: split_roles(&self.roles),
            created_at: self.created_at,
        }
    }

    pub(super) fn into_credentials(self) -> UserCredentials {
        UserCredentials {
            id: self.id,
            roles: split_roles(&self.roles),
            email: self.email,
            password_hash: self.password_hash,
            disabled: self.disabled,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct TodoRow {
    id: Uuid,
    title: String,
    description: String,
    completed: bool,
    category_id: Option<Uuid>,
    due_date: Option<Date>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl From<TodoRow> for Todo {
    fn from(r: TodoRow) -> Self {
        Todo {
            id: r.id,
            title: r.title,
            description: r.description,
            completed: r.completed,
            category_id: r.category_id,
            due_date: r.due_date,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct CategoryRow {
    id: Uuid,
    parent_id: Option<Uuid>,
    name: String,
    created_at: OffsetDateTime,
}

impl From<CategoryRow> for Category {
    fn from(r: CategoryRow) -> Self {
        Category {
            id: r.id,
            parent_id: r.parent_id,
            name: r.name,
            created_at: r.created_at,
        }
    }
}

/// Maps constraint violations to the conditions callers handle; everything else stays a database error.
pub(super) fn map_constraint(e: sqlx::Error) -> super::StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => super::StoreError::Conflict,
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            super::StoreError::InvalidReference
        }
        _ => super::StoreError::Database(e),
    }
}

pub(super) const TODO_COLUMNS: &str =
    "id, title, description, completed, category_id, due_date, created_at, updated_at";
pub(super) const USER_COLUMNS: &str = "id, email, password_hash, roles, disabled, created_at";
pub(super) const CATEGORY_COLUMNS: &str = "id, parent_id, name, created_at";

macro_rules! impl_sql_store {
    ($store:ident, $db:path, $stamp:path, $stamp_ty:ty) => {
        mod sql_impl {
            use async_trait::async_trait;
            use sqlx::QueryBuilder;
            use uuid::Uuid;

            use super::super::sql::{
                map_constraint, to_micros, CategoryRow, TodoRow, UserRow, CATEGORY_COLUMNS,
                TODO_COLUMNS, USER_COLUMNS,
            };
            use super::super::{PoolStats, Store, StoreError};
            use crate::domain::{
                Category, CategoryFilter, CategoryName, Email, NewTodo, Page, Todo, TodoFilter,
                TodoPatch, User, UserCredentials,
            };

            type Tx<'a> = sqlx::Transaction<'a, $db>;

            async fn category_owned(
                tx: &mut Tx<'_>,
                owner: Uuid,
                id: Uuid,
            ) -> Result<bool, StoreError> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM categories WHERE id = $1 AND user_id = $2",
                )
                .bind(id)
                .bind(owner)
                .fetch_one(&mut **tx)
                .await?;
                Ok(n > 0)
            }

            fn push_todo_filter(qb: &mut QueryBuilder<'_, $db>, owner: Uuid, f: &TodoFilter) {
                qb.push(" WHERE user_id = ").push_bind(owner);
                if let Some(c) = f.completed {
                    qb.push(" AND completed = ").push_bind(c);
                }
                match f.category {
                    Some(CategoryFilter::In(id)) => {
                        qb.push(" AND category_id = ").push_bind(id);
                    }
                    Some(CategoryFilter::Uncategorised) => {
                        qb.push(" AND category_id IS NULL");
                    }
                    None => {}
                }
                if let Some(d) = f.due_before {
                    qb.push(" AND due_date < ").push_bind(d);
                }
                if let Some(d) = f.due_after {
                    qb.push(" AND due_date > ").push_bind(d);
                }
            }

            /// Takes the owner's row lock for the rest of the transaction and bumps the version of
            /// their category tree: tree changes of one user run one at a time, so two concurrent
            /// moves (A under B, B under A) cannot both pass the cycle check.
            async fn lock_tree(tx: &mut Tx<'_>, owner: Uuid) -> Result<(), StoreError> {
                sqlx::query("UPDATE users SET tree_version = tree_version + 1 WHERE id = $1")
                    .bind(owner)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            async fn todo_exists(tx: &mut Tx<'_>, owner: Uuid, id: Uuid) -> Result<bool, StoreError> {
                let n: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM todos WHERE id = $1 AND user_id = $2")
                        .bind(id)
                        .bind(owner)
                        .fetch_one(&mut **tx)
                        .await?;
                Ok(n > 0)
            }

            impl super::$store {
                /// The time to store, from the store's clock.
                fn stamp(&self) -> $stamp_ty {
                    $stamp(to_micros((self.clock)()))
                }

                /// A pooled connection; the wait for it is added to the store's acquire statistics.
                async fn conn(&self) -> Result<sqlx::pool::PoolConnection<$db>, StoreError> {
                    let started = std::time::Instant::now();
                    let conn = self.pool.acquire().await;
                    self.acquire.record(started.elapsed());
                    Ok(conn?)
                }
            }

            #[async_trait]
            impl Store for super::$store {
                async fn ping(&self) -> Result<(), StoreError> {
                    sqlx::query("SELECT 1").execute(&mut *self.conn().await?).await?;
                    Ok(())
                }

                fn pool_stats(&self) -> PoolStats {
                    let (acquires, acquire_wait_ns) = self.acquire.totals();
                    PoolStats {
                        size: self.pool.size(),
                        idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
                        acquires,
                        acquire_wait_ns,
                    }
                }

                async fn create_user(
                    &self,
                    email: &Email,
                    password_hash: &str,
                ) -> Result<User, StoreError> {
                    let row: UserRow = sqlx::query_as(&format!(
                        "INSERT INTO users (id, email, password_hash, roles, disabled, created_at) \
                         VALUES ($1, $2, $3, 'user', FALSE, $4) RETURNING {USER_COLUMNS}"
                    ))
                    .bind(Uuid::new_v4())
                    .bind(email.as_str())
                    .bind(password_hash)
                    .bind(self.stamp())
                    .fetch_one(&mut *self.conn().await?)
                    .await
                    .map_err(map_constraint)?;
                    Ok(row.into_user())
                }

                async fn user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
                    let row: Option<UserRow> = sqlx::query_as(&format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
                    ))
                    .bind(id)
                    .fetch_optional(&mut *self.conn().await?)
                    .await?;
                    Ok(row.map(UserRow::into_user))
                }

                async fn user_credentials(
                    &self,
                    email: &Email,
                ) -> Result<Option<UserCredentials>, StoreError> {
                    let row: Option<UserRow> = sqlx::query_as(&format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
                    ))
                    .bind(email.as_str())
                    .fetch_optional(&mut *self.conn().await?)
                    .await?;
                    Ok(row.map(UserRow::into_credentials))
                }

                async fn create_todo(&self, owner: Uuid, t: &NewTodo) -> Result<Todo, StoreError> {
                    let mut conn = self.conn().await?;
                    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                    if let Some(c) = t.category_id {
                        if !category_owned(&mut tx, owner, c).await? {
                            return Err(StoreError::InvalidReference);
                        }
                    }
                    let ts = self.stamp();
                    let row: TodoRow = sqlx::query_as(&format!(
                        "INSERT INTO todos (id, user_id, category_id, title, description, completed, \
                         due_date, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                         RETURNING {TODO_COLUMNS}"
                    ))
                    .bind(Uuid::new_v4())
                    .bind(owner)
                    .bind(t.category_id)
                    .bind(t.title.as_str())
                    .bind(t.description.as_str())
                    .bind(t.completed)
                    .bind(t.due_date)
                    .bind(ts.clone())
                    .bind(ts)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_constraint)?;
                    tx.commit().await?;
                    Ok(row.into())
                }

                async fn todo(&self, owner: Uuid, id: Uuid) -> Result<Option<Todo>, StoreError> {
                    let row: Option<TodoRow> = sqlx::query_as(&format!(
                        "SELECT {TODO_COLUMNS} FROM todos WHERE id = $1 AND user_id = $2"
                    ))
                    .bind(id)
                    .bind(owner)
                    .fetch_optional(&mut *self.conn().await?)
                    .await?;
                    Ok(row.map(Into::into))
                }

                async fn list_todos(
                    &self,
                    owner: Uuid,
                    f: &TodoFilter,
                ) -> Result<Page<Todo>, StoreError> {
                    let mut count = QueryBuilder::<$db>::new("SELECT COUNT(*) FROM todos");
                    push_todo_filter(&mut count, owner, f);
                    let total: i64 = count.build_query_scalar().fetch_one(&mut *self.conn().await?).await?;

                    let mut q = QueryBuilder::<$db>::new(format!("SELECT {TODO_COLUMNS} FROM todos"));
                    push_todo_filter(&mut q, owner, f);
                    q.push(" ORDER BY ").push(f.sort.order_by(f.order)).push(" LIMIT ");
                    q.push_bind(i64::from(f.limit));
                    q.push(" OFFSET ").push_bind(i64::from(f.offset));
                    let rows: Vec<TodoRow> = q.build_query_as().fetch_all(&mut *self.conn().await?).await?;
                    Ok(Page {
                        items: rows.into_iter().map(Into::into).collect(),
                        total,
                    })
                }

                async fn update_todo(
                    &self,
                    owner: Uuid,
                    id: Uuid,
                    patch: &TodoPatch,
                ) -> Result<Option<Todo>, StoreError> {
                    let mut conn = self.conn().await?;
                    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                    if let Some(Some(c)) = patch.category_id {
                        if !category_owned(&mut tx, owner, c).await? {
                            // Someone else's (or no) todo answers 404 whatever the body names.
                            return if todo_exists(&mut tx, owner, id).await? {
                                Err(StoreError::InvalidReference)
                            } else {
                                Ok(None)
                            };
                        }
                    }
                    // One UPDATE that sets only the given fields: concurrent patches of different
                    // fields both take effect (no read-modify-write of the whole row).
                    let mut q = QueryBuilder::<$db>::new("UPDATE todos SET updated_at = ");
                    q.push_bind(self.stamp());
                    if let Some(t) = &patch.title {
                        q.push(", title = ").push_bind(t.as_str().to_owned());
                    }
                    if let Some(d) = &patch.description {
                        q.push(", description = ").push_bind(d.as_str().to_owned());
                    }
                    if let Some(c) = patch.completed {
                        q.push(", completed = ").push_bind(c);
                    }
                    if let Some(c) = patch.category_id {
                        q.push(", category_id = ").push_bind(c);
                    }
                    if let Some(d) = patch.due_date {
                        q.push(", due_date = ").push_bind(d);
                    }
                    q.push(" WHERE id = ").push_bind(id);
                    q.push(" AND user_id = ").push_bind(owner);
                    q.push(format!(" RETURNING {TODO_COLUMNS}"));
                    let row: Option<TodoRow> = q
                        .build_query_as()
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_constraint)?;
                    tx.commit().await?;
                    Ok(row.map(Into::into))
                }

                async fn delete_todo(&self, owner: Uuid, id: Uuid) -> Result<bool, StoreError> {
                    let done = sqlx::query("DELETE FROM todos WHERE id = $1 AND user_id = $2")
                        .bind(id)
                        .bind(owner)
                        .execute(&mut *self.conn().await?)
                        .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn create_category(
                    &self,
                    owner: Uuid,
                    name: &CategoryName,
                    parent: Option<Uuid>,
                ) -> Result<Category, StoreError> {
                    let mut conn = self.conn().await?;
                    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                    lock_tree(&mut tx, owner).await?;
                    if let Some(p) = parent {
                        if !category_owned(&mut tx, owner, p).await? {
                            return Err(StoreError::InvalidReference);
                        }
                    }
                    let row: CategoryRow = sqlx::query_as(&format!(
                        "INSERT INTO categories (id, user_id, parent_id, name, created_at) \
                         VALUES ($1, $2, $3, $4, $5) RETURNING {CATEGORY_COLUMNS}"
                    ))
                    .bind(Uuid::new_v4())
                    .bind(owner)
                    .bind(parent)
                    .bind(name.as_str())
                    .bind(self.stamp())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_constraint)?;
                    tx.commit().await?;
                    Ok(row.into())
                }

                async fn categories(&self, owner: Uuid) -> Result<Vec<Category>, StoreError> {
                    let rows: Vec<CategoryRow> = sqlx::query_as(&format!(
                        "SELECT {CATEGORY_COLUMNS} FROM categories WHERE user_id = $1 ORDER BY lower(name), name, id"
                    ))
                    .bind(owner)
                    .fetch_all(&mut *self.conn().await?)
                    .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn update_category(
                    &self,
                    owner: Uuid,
                    id: Uuid,
                    name: Option<&CategoryName>,
                    parent: Option<Option<Uuid>>,
                ) -> Result<Option<Category>, StoreError> {
                    let mut conn = self.conn().await?;
                    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                    lock_tree(&mut tx, owner).await?;
                    let current: Option<CategoryRow> = sqlx::query_as(&format!(
                        "SELECT {CATEGORY_COLUMNS} FROM categories WHERE id = $1 AND user_id = $2"
                    ))
                    .bind(id)
                    .bind(owner)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(current) = current else {
                        return Ok(None);
                    };
                    let mut cat: Category = current.into();
                    if let Some(new_parent) = parent {
                        if let Some(p) = new_parent {
                            if p == id {
                                return Err(StoreError::Cycle);
                            }
                            if !category_owned(&mut tx, owner, p).await? {
                                return Err(StoreError::InvalidReference);
                            }
                            // Is `id` an ancestor of the new parent? Then the move would close a loop.
                            let loops: i64 = sqlx::query_scalar(
                                "WITH RECURSIVE anc(id, parent_id) AS ( \
                                   SELECT id, parent_id FROM categories WHERE id = $1 AND user_id = $2 \
                                   UNION ALL \
                                   SELECT c.id, c.parent_id FROM categories c JOIN anc ON c.id = anc.parent_id \
                                 ) SELECT COUNT(*) FROM anc WHERE id = $3",
                            )
                            .bind(p)
                            .bind(owner)
                            .bind(id)
                            .fetch_one(&mut *tx)
                            .await?;
                            if loops > 0 {
                                return Err(StoreError::Cycle);
                            }
                        }
                        cat.parent_id = new_parent;
                    }
                    if let Some(n) = name {
                        cat.name = n.as_str().to_owned();
                    }
                    let row: CategoryRow = sqlx::query_as(&format!(
                        "UPDATE categories SET name = $1, parent_id = $2 WHERE id = $3 AND user_id = $4 \
                         RETURNING {CATEGORY_COLUMNS}"
                    ))
                    .bind(&cat.name)
                    .bind(cat.parent_id)
                    .bind(id)
                    .bind(owner)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_constraint)?;
                    tx.commit().await?;
                    Ok(Some(row.into()))
                }

                async fn delete_category(&self, owner: Uuid, id: Uuid) -> Result<bool, StoreError> {
                    let mut conn = self.conn().await?;
                    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                    lock_tree(&mut tx, owner).await?;
                    let children: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM categories WHERE parent_id = $1 AND user_id = $2",
                    )
                    .bind(id)
                    .bind(owner)
                    .fetch_one(&mut *tx)
                    .await?;
                    if children > 0 {
                        return Err(StoreError::HasChildren);
                    }
                    let done = sqlx::query("DELETE FROM categories WHERE id = $1 AND user_id = $2")
                        .bind(id)
                        .bind(owner)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| match map_constraint(e) {
                            // A child created concurrently trips ON DELETE RESTRICT.
                            StoreError::InvalidReference => StoreError::HasChildren,
                            other => other,
                        })?;
                    tx.commit().await?;
                    Ok(done.rows_affected() > 0)
                }
            }
        }
    };
}

pub(super) use impl_sql_store;
