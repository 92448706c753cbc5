//! The SQL behind both stores, written once. `impl_sql_store!(Type, Db)` implements `Store` for a
//! struct with a `pool` field of `sqlx::Pool<Db>`. Only portable SQL is used (numbered parameters in
//! order of first use, `RETURNING`, `WITH RECURSIVE`), so PostgreSQL and SQLite run the same text.

use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::domain::{Category, Todo, User, UserCredentials};

/// Current time at microsecond precision, the precision both databases store.
pub(super) fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
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
    ($store:ident, $db:path) => {
        mod sql_impl {
            use async_trait::async_trait;
            use sqlx::QueryBuilder;
            use uuid::Uuid;

            use super::super::sql::{
                map_constraint, now, CategoryRow, TodoRow, UserRow, CATEGORY_COLUMNS,
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

            impl super::$store {
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
                    .bind(now())
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
                    let ts = now();
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
                    .bind(ts)
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
                    let col = f.sort.column();
                    let dir = f.order.sql();
                    // Nulls (no due date) sort last in both directions and in both databases.
                    q.push(format!(
                        " ORDER BY ({col} IS NULL) ASC, {col} {dir}, id {dir} LIMIT "
                    ));
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
                    let current: Option<TodoRow> = sqlx::query_as(&format!(
                        "SELECT {TODO_COLUMNS} FROM todos WHERE id = $1 AND user_id = $2"
                    ))
                    .bind(id)
                    .bind(owner)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(current) = current else {
                        return Ok(None);
                    };
                    let mut todo: Todo = current.into();
                    if let Some(Some(c)) = patch.category_id {
                        if !category_owned(&mut tx, owner, c).await? {
                            return Err(StoreError::InvalidReference);
                        }
                    }
                    if let Some(t) = &patch.title {
                        todo.title = t.as_str().to_owned();
                    }
                    if let Some(d) = &patch.description {
                        todo.description = d.as_str().to_owned();
                    }
                    if let Some(c) = patch.completed {
                        todo.completed = c;
                    }
                    if let Some(c) = patch.category_id {
                        todo.category_id = c;
                    }
                    if let Some(d) = patch.due_date {
                        todo.due_date = d;
                    }
                    let row: TodoRow = sqlx::query_as(&format!(
                        "UPDATE todos SET title = $1, description = $2, completed = $3, \
                         category_id = $4, due_date = $5, updated_at = $6 \
                         WHERE id = $7 AND user_id = $8 RETURNING {TODO_COLUMNS}"
                    ))
                    .bind(&todo.title)
                    .bind(&todo.description)
                    .bind(todo.completed)
                    .bind(todo.category_id)
                    .bind(todo.due_date)
                    .bind(now())
                    .bind(id)
                    .bind(owner)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_constraint)?;
                    tx.commit().await?;
                    Ok(Some(row.into()))
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
                    .bind(now())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_constraint)?;
                    tx.commit().await?;
                    Ok(row.into())
                }

                async fn categories(&self, owner: Uuid) -> Result<Vec<Category>, StoreError> {
                    let rows: Vec<CategoryRow> = sqlx::query_as(&format!(
                        "SELECT {CATEGORY_COLUMNS} FROM categories WHERE user_id = $1 ORDER BY name, id"
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
