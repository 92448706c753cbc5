//! `InstrumentedStore`: wraps any `Store` and records each operation's latency (pool acquire included)
//! in `todo_backend_db_query_duration_seconds{op}`. The label is the method name: a fixed set.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use prometheus::HistogramVec;
use uuid::Uuid;

use super::{DataVersions, PoolStats, Store, StoreError};
use crate::domain::{
    Category, CategoryName, Email, NewTodo, Page, Todo, TodoFilter, TodoPatch, User,
    UserCredentials,
};

pub struct InstrumentedStore {
    inner: Arc<dyn Store>,
    duration: HistogramVec,
}

impl InstrumentedStore {
    pub fn new(inner: Arc<dyn Store>, duration: HistogramVec) -> Self {
        Self { inner, duration }
    }
}

macro_rules! timed {
    ($self:ident, $op:literal, $call:expr) => {{
        let started = Instant::now();
        let result = $call.await;
        $self
            .duration
            .with_label_values(&[$op])
            .observe(started.elapsed().as_secs_f64());
        result
    }};
}

#[async_trait]
impl Store for InstrumentedStore {
    async fn data_versions(&self, owner: Uuid) -> Result<Option<DataVersions>, StoreError> {
        timed!(self, "data_versions", self.inner.data_versions(owner))
    }
    async fn ping(&self) -> Result<(), StoreError> {
        timed!(self, "ping", self.inner.ping())
    }
    fn pool_stats(&self) -> PoolStats {
        self.inner.pool_stats()
    }
    async fn create_user(&self, email: &Email, hash: &str) -> Result<User, StoreError> {
        timed!(self, "create_user", self.inner.create_user(email, hash))
    }
    async fn user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        timed!(self, "user", self.inner.user(id))
    }
    async fn user_credentials(&self, email: &Email) -> Result<Option<UserCredentials>, StoreError> {
        timed!(self, "user_credentials", self.inner.user_credentials(email))
    }
    async fn create_todo(&self, owner: Uuid, todo: &NewTodo) -> Result<Todo, StoreError> {
        timed!(self, "create_todo", self.inner.create_todo(owner, todo))
    }
    async fn todo(&self, owner: Uuid, id: Uuid) -> Result<Option<Todo>, StoreError> {
        timed!(self, "todo", self.inner.todo(owner, id))
    }
    async fn list_todos(&self, owner: Uuid, filter: &TodoFilter) -> Result<Page<Todo>, StoreError> {
        timed!(self, "list_todos", self.inner.list_todos(owner, filter))
    }
    async fn update_todo(
        &self,
        owner: Uuid,
        id: Uuid,
        patch: &TodoPatch,
    ) -> Result<Option<Todo>, StoreError> {
        timed!(
            self,
            "update_todo",
            self.inner.update_todo(owner, id, patch)
        )
    }
    async fn delete_todo(&self, owner: Uuid, id: Uuid) -> Result<bool, StoreError> {
        timed!(self, "delete_todo", self.inner.delete_todo(owner, id))
    }
    async fn create_category(
        &self,
        owner: Uuid,
        name: &CategoryName,
        parent: Option<Uuid>,
    ) -> Result<Category, StoreError> {
        timed!(
            self,
            "create_category",
            self.inner.create_category(owner, name, parent)
        )
    }
    async fn categories(&self, owner: Uuid) -> Result<Vec<Category>, StoreError> {
        timed!(self, "categories", self.inner.categories(owner))
    }
    async fn update_category(
        &self,
        owner: Uuid,
        id: Uuid,
        name: Option<&CategoryName>,
        parent: Option<Option<Uuid>>,
    ) -> Result<Option<Category>, StoreError> {
        timed!(
            self,
            "update_category",
            self.inner.update_category(owner, id, name, parent)
        )
    }
    async fn delete_category(&self, owner: Uuid, id: Uuid) -> Result<bool, StoreError> {
        timed!(
            self,
            "delete_category",
            self.inner.delete_category(owner, id)
        )
    }
}
