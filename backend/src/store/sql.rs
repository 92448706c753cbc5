//! The SQL behind both stores, written once. `impl_sql_store!(Type, Db, stamp, StampType, explain, column)`
//! implements `Store` for a struct with a `pool: sqlx::Pool<Db>` (reads, and writes when `writer` is
//! `None`), a `writer: Option<sqlx::Pool<Db>>`, an `acquire` and a `clock` field; `stamp` turns a time into the
//! value bound for a timestamp column. Only portable SQL is used (numbered parameters in order of
//! first use, `RETURNING`, `WITH RECURSIVE`), so PostgreSQL and SQLite run the same text.
//!
//! Order means the same on both databases:
//! - SQLite keeps timestamps as text, so they are written fixed-width (`sqlite_stamp`: always six
//!   fraction digits, UTC), where text order is time order; PostgreSQL has `TIMESTAMPTZ`.
//! - Titles sort case-insensitively by `lower(title)`, then by the title itself and the id. The
//!   columns are `COLLATE "C"` on PostgreSQL (migration 0002), where, as in SQLite, comparison is by
//!   code point and `lower()` folds ASCII letters only. The folded title is the column
//!   `title_key` (migration 0003; generated, so it cannot disagree with the title).
//!
//! Lists (migration 0003) cost the same on page 1 and page 500, and with 10 or 10,000 todos:
//! - A page is a keyset read: `(sort key, id) > (cursor)` as a range of the index of that order
//!   (`todos_user_created`, `todos_user_title`, `todos_user_due`), `LIMIT limit + 1`, the extra row
//!   saying whether there is a next page. The due-date order puts todos without a date last in both
//!   directions, so it is two ranges (dated, then undated by id); a page that crosses reads both.
//!   The deprecated `offset` still works, and still costs in proportion to the offset.
//! - A total is asked for (`count`): without filters, or with `completed` only, it is read from the
//!   owner's counters (`todo_count`, `completed_count`), which every insert, delete and completion
//!   change adjusts in its own transaction; other filters count the matching rows of their index.
//! - Every write of a user's todos first takes the owner's row (`lock_todos`), so the counters have
//!   one writer per user at a time and every writer takes the same locks in the same order.

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
    ($store:ident, $db:path, $stamp:path, $stamp_ty:ty, $explain:literal, $plan_col:literal) => {
        mod sql_impl {
            use async_trait::async_trait;
            use sqlx::QueryBuilder;
            use uuid::Uuid;

            use super::super::sql::{
                map_constraint, to_micros, CategoryRow, TodoRow, UserRow,
                CATEGORY_COLUMNS, TODO_COLUMNS, USER_COLUMNS,
            };
            use super::super::{DataVersions, PoolStats, Store, StoreError};
            use crate::domain::{
                Category, CategoryFilter, CategoryName, Cursor, Email, NewTodo, Page, PageStart,
                SortKey, SortOrder, Todo, TodoFilter, TodoPatch, TodoSort, User,
                UserCredentials,
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
            /// moves (A under B, B under A) cannot both pass the cycle check. `todos_change` also
            /// bumps the todos' version (a delete uncategorises todos).
            async fn lock_tree(tx: &mut Tx<'_>, owner: Uuid, todos_change: bool) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE users SET tree_version = tree_version + 1, \
                     data_version = data_version + $1 WHERE id = $2",
                )
                .bind(i64::from(todos_change))
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

            /// Takes the owner's row lock for the rest of the transaction and bumps the version of
            /// their todos, before anything is read: every write of a user's todos takes the same
            /// lock first (one lock order, no deadlock between a delete and a patch of one todo), so
            /// the counters below are read and changed by one writer at a time. `todos` and `done`
            /// adjust `todo_count` and `completed_count` in the same statement.
            async fn lock_todos(
                tx: &mut Tx<'_>,
                owner: Uuid,
                todos: i64,
                done: i64,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE users SET data_version = data_version + 1, \
                     todo_count = todo_count + $1, completed_count = completed_count + $2 \
                     WHERE id = $3",
                )
                .bind(todos)
                .bind(done)
                .bind(owner)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            async fn add_completed(tx: &mut Tx<'_>, owner: Uuid, done: i64) -> Result<(), StoreError> {
                sqlx::query("UPDATE users SET completed_count = completed_count + $1 WHERE id = $2")
                    .bind(done)
                    .bind(owner)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            /// Which part of the due-date order a read covers: the dated todos, then (in both
            /// directions) the undated ones. Each part is a range of `todos_user_due`; a page that
            /// crosses from one to the other reads both.
            #[derive(Clone, Copy, PartialEq, Eq)]
            enum DuePart {
                Dated,
                Undated,
            }

            /// `SELECT … LIMIT take` for one page (or one part of a due-date page): the filters, the
            /// keyset condition after the cursor, the order of the index that serves it.
            fn page_query<'a>(
                prefix: &str,
                owner: Uuid,
                f: &'a TodoFilter,
                part: Option<DuePart>,
                take: usize,
            ) -> QueryBuilder<'a, $db> {
                let mut q =
                    QueryBuilder::<$db>::new(format!("{prefix}SELECT {TODO_COLUMNS} FROM todos"));
                push_todo_filter(&mut q, owner, f);
                let (op, dir) = match f.order {
                    SortOrder::Asc => (" > ", " ASC"),
                    SortOrder::Desc => (" < ", " DESC"),
                };
                let after = match &f.start {
                    PageStart::After(c) => Some((&c.key, c.id)),
                    PageStart::First | PageStart::Offset(_) => None,
                };
                match part {
                    Some(DuePart::Dated) => {
                        q.push(" AND due_date IS NOT NULL");
                    }
                    Some(DuePart::Undated) => {
                        q.push(" AND due_date IS NULL");
                    }
                    None => {}
                }
                match (after, part) {
                    (Some((SortKey::Created(at), id)), _) => {
                        q.push(" AND (created_at, id)").push(op).push("(");
                        q.push_bind($stamp(to_micros(*at))).push(", ");
                        q.push_bind(id).push(")");
                    }
                    (Some((SortKey::Title { folded, title }, id)), _) => {
                        q.push(" AND (title_key, title, id)").push(op).push("(");
                        q.push_bind(folded.as_str()).push(", ").push_bind(title.as_str());
                        q.push(", ").push_bind(id).push(")");
                    }
                    (Some((SortKey::Due(Some(d)), id)), Some(DuePart::Dated)) => {
                        q.push(" AND (due_date, id)").push(op).push("(");
                        q.push_bind(*d).push(", ").push_bind(id).push(")");
                    }
                    (Some((SortKey::Due(None), id)), Some(DuePart::Undated)) => {
                        q.push(" AND id").push(op).push_bind(id);
                    }
                    // From the start of the undated part (the cursor was among the dated todos),
                    // or the start of the list.
                    _ => {}
                }
                q.push(" ORDER BY ");
                match (&f.start, part) {
                    (PageStart::Offset(_), _) | (_, None) => {
                        q.push(f.sort.order_by(f.order));
                    }
                    (_, Some(DuePart::Dated)) => {
                        q.push("due_date").push(dir).push(", id").push(dir);
                    }
                    (_, Some(DuePart::Undated)) => {
                        q.push("id").push(dir);
                    }
                }
                q.push(" LIMIT ").push_bind(i64::try_from(take).unwrap_or(i64::MAX));
                if let PageStart::Offset(n) = f.start {
                    q.push(" OFFSET ").push_bind(i64::from(n));
                }
                q
            }

            /// The number of todos matching `f`: from the owner's counters when the filter is
            /// at most `completed`, else an index-assisted count of the matching rows.
            async fn count_todos(
                conn: &mut <$db as sqlx::Database>::Connection,
                owner: Uuid,
                f: &TodoFilter,
            ) -> Result<i64, StoreError> {
                if f.category.is_none() && f.due_before.is_none() && f.due_after.is_none() {
                    let (all, done): (i64, i64) = sqlx::query_as(
                        "SELECT todo_count, completed_count FROM users WHERE id = $1",
                    )
                    .bind(owner)
                    .fetch_optional(&mut *conn)
                    .await?
                    .unwrap_or((0, 0));
                    return Ok(match f.completed {
                        None => all,
                        Some(true) => done,
                        Some(false) => all - done,
                    });
                }
                let mut q = QueryBuilder::<$db>::new("SELECT COUNT(*) FROM todos");
                push_todo_filter(&mut q, owner, f);
                Ok(q.build_query_scalar().fetch_one(&mut *conn).await?)
            }

            /// The parts of the due-date order a read of `f` covers (`[None]`: one query).
            fn parts(f: &TodoFilter) -> &'static [Option<DuePart>] {
                if f.sort == TodoSort::DueDate && !matches!(f.start, PageStart::Offset(_)) {
                    &[Some(DuePart::Dated), Some(DuePart::Undated)]
                } else {
                    &[None]
                }
            }

            impl super::$store {
                /// The plan the database chooses for each query of the page read `f`, one line per
                /// step (`EXPLAIN`; for the test that fails on a full scan or a sort step).
                #[doc(hidden)]
                pub async fn explain_list(
                    &self,
                    owner: Uuid,
                    f: &TodoFilter,
                ) -> Result<Vec<String>, StoreError> {
                    let mut conn = self.conn().await?;
                    let take = usize::try_from(f.limit).unwrap_or(usize::MAX).saturating_add(1);
                    let mut lines = Vec::new();
                    for part in parts(f) {
                        let rows = page_query($explain, owner, f, *part, take)
                            .build()
                            .fetch_all(&mut *conn)
                            .await?;
                        for r in rows {
                            lines.push(sqlx::Row::try_get::<String, _>(&r, $plan_col)?);
                        }
                    }
                    Ok(lines)
                }

                /// The time to store, from the store's clock.
                fn stamp(&self) -> $stamp_ty {
                    $stamp(to_micros((self.clock)()))
                }

                /// A pooled connection for reads; the wait for it is added to the store's acquire
                /// statistics.
                async fn conn(&self) -> Result<sqlx::pool::PoolConnection<$db>, StoreError> {
                    let started = std::time::Instant::now();
                    let conn = self.pool.acquire().await;
                    self.acquire.record(started.elapsed());
                    Ok(conn?)
                }

                /// A pooled connection for a write (the writer pool: see the store's docs).
                async fn write_conn(&self) -> Result<sqlx::pool::PoolConnection<$db>, StoreError> {
                    let started = std::time::Instant::now();
                    let conn = self.writer.as_ref().unwrap_or(&self.pool).acquire().await;
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
                    let (mut size, mut idle) = (self.pool.size(), self.pool.num_idle());
                    if let Some(w) = &self.writer {
                        size += w.size();
                        idle += w.num_idle();
                    }
                    PoolStats {
                        size,
                        idle: u32::try_from(idle).unwrap_or(u32::MAX),
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
                    .fetch_one(&mut *self.write_conn().await?)
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

                async fn data_versions(&self, owner: Uuid) -> Result<Option<DataVersions>, StoreError> {
                    let row: Option<(i64, i64)> = sqlx::query_as(
                        "SELECT data_version, tree_version FROM users WHERE id = $1",
                    )
                    .bind(owner)
                    .fetch_optional(&mut *self.conn().await?)
                    .await?;
                    Ok(row.map(|(todos, tree)| DataVersions { todos, tree }))
                }

                async fn create_todo(&self, owner: Uuid, t: &NewTodo) -> Result<Todo, StoreError> {
                    let mut conn = self.write_conn().await?;
                    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                    lock_todos(&mut tx, owner, 1, i64::from(t.completed)).await?;
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
                    let mut conn = self.conn().await?;
                    let limit = usize::try_from(f.limit).unwrap_or(usize::MAX);
                    // One row more than the page: whether it exists says whether there is a next page.
                    let want = limit.saturating_add(1);
                    let mut rows: Vec<Todo> = Vec::with_capacity(want.min(256));
                    let among_undated = matches!(
                        &f.start,
                        PageStart::After(Cursor { key: SortKey::Due(None), .. })
                    );
                    for &part in parts(f) {
                        if rows.len() == want
                            || (part == Some(DuePart::Dated) && among_undated)
                        {
                            continue;
                        }
                        let more: Vec<TodoRow> = page_query("", owner, f, part, want - rows.len())
                            .build_query_as()
                            .fetch_all(&mut *conn)
                            .await?;
                        rows.extend(more.into_iter().map(Todo::from));
                    }
                    let next = (rows.len() > limit)
                        .then(|| {
                            rows.truncate(limit);
                            rows.last().map(|t| Cursor::after(t, f.sort, f.order))
                        })
                        .flatten();
                    let total = if f.count {
                        Some(count_todos(&mut conn, owner, f).await?)
                    } else {
                        None
                    };
                    Ok(Page {
                        items: rows,
                        next,
                        total,
                    })
                }

                async fn update_todo(
                    &self,
                    owner: Uuid,
                    id: Uuid,
                    patch: &TodoPatch,
                ) -> Result<Option<Todo>, StoreError> {
                    let mut conn = self.write_conn().await?;
                    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                    lock_todos(&mut tx, owner, 0, 0).await?;
                    // Read under the lock: the completed counter moves by what this patch changes.
                    let was_completed: Option<bool> = match patch.completed {
                        Some(_) => {
                            sqlx::query_scalar(
                                "SELECT completed FROM todos WHERE id = $1 AND user_id = $2",
                            )
                            .bind(id)
                            .bind(owner)
                            .fetch_optional(&mut *tx)
                            .await?
                        }
                        None => None,
                    };
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
                    if let (Some(was), Some(now), Some(_)) = (was_completed, patch.completed, &row) {
                        if was != now {
                            add_completed(&mut tx, owner, if now { 1 } else { -1 }).await?;
                        }
                    }
                    tx.commit().await?;
                    Ok(row.map(Into::into))
                }

                async fn delete_todo(&self, owner: Uuid, id: Uuid) -> Result<bool, StoreError> {
                    let mut conn = self.write_conn().await?;
                    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                    lock_todos(&mut tx, owner, 0, 0).await?;
                    let deleted: Option<bool> = sqlx::query_scalar(
                        "DELETE FROM todos WHERE id = $1 AND user_id = $2 RETURNING completed",
                    )
                    .bind(id)
                    .bind(owner)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(completed) = deleted else {
                        // Nothing changed: the version bump is rolled back with the transaction.
                        return Ok(false);
                    };
                    sqlx::query(
                        "UPDATE users SET todo_count = todo_count - 1, \
                         completed_count = completed_count - $1 WHERE id = $2",
                    )
                    .bind(i64::from(completed))
                    .bind(owner)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(true)
                }

                async fn create_category(
                    &self,
                    owner: Uuid,
                    name: &CategoryName,
                    parent: Option<Uuid>,
                ) -> Result<Category, StoreError> {
                    let mut conn = self.write_conn().await?;
                    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                    lock_tree(&mut tx, owner, false).await?;
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
                    let mut conn = self.write_conn().await?;
                    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                    lock_tree(&mut tx, owner, false).await?;
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
                    let mut conn = self.write_conn().await?;
                    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                    lock_tree(&mut tx, owner, true).await?;
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
