//! Todos: create, get, list (filters, ordering, cursor pagination, an optional total), patch, delete.
//! Every query is scoped to the caller; another user's todo answers 404.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use time::Date;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::conditional::{version, Cached, Conditional};
use super::{double_option, AppJson, AppPath, AppQuery};
use crate::domain::{
    CategoryFilter, Cursor, NewTodo, PageStart, SortOrder, Todo, TodoDescription, TodoFilter,
    TodoPatch, TodoSort, TodoTitle,
};
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::identity::Identity;
use crate::AppState;

/// Page size when the client does not ask for one, and the largest it may ask for.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 200;

fn parse_date(field: &str, raw: &str, problems: &mut Vec<FieldError>) -> Option<Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(raw, fmt)
        .map_err(|_| {
            problems.push(FieldError {
                field: field.to_owned(),
                message: "must be a date like 2026-12-31".into(),
            });
        })
        .ok()
}

fn push<'a>(problems: &'a mut Vec<FieldError>, field: &str) -> impl FnOnce(&'static str) + 'a {
    let field = field.to_owned();
    move |m| {
        problems.push(FieldError {
            field,
            message: m.to_owned(),
        });
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only completed (`true`) or open (`false`) todos.
    completed: Option<bool>,
    /// A category id (hyphenated UUID), or `none` for todos without a category.
    #[param(
        pattern = r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|none)$"
    )]
    category_id: Option<String>,
    /// Due strictly before this date (`YYYY-MM-DD`).
    #[param(format = Date)]
    due_before: Option<String>,
    /// Due strictly after this date (`YYYY-MM-DD`).
    #[param(format = Date)]
    due_after: Option<String>,
    sort: Option<TodoSort>,
    order: Option<SortOrder>,
    /// 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// Where the page starts: the `next` of the page before, read with the same `sort` and `order`
    /// (the filters may change between pages). Absent: the first page.
    #[param(max_length = 4096, pattern = r"^[A-Za-z0-9_-]+$")]
    cursor: Option<String>,
    /// Whether the answer carries `total`, the number of matching todos over all pages. Default
    /// `false` (a filter by category or due date makes the count cost in proportion to the
    /// matching todos).
    count: Option<bool>,
    /// Deprecated: use `cursor`. Todos to skip, 0 to 4294967295 (utoipa would call a `u32` an
    /// `int32`); not together with `cursor`. An offset read costs in proportion to the offset.
    #[param(format = Int64, minimum = 0, maximum = 4294967295_u64)]
    #[deprecated = "use `cursor`"]
    offset: Option<u32>,
}

/// A hyphenated UUID, the only form the API documents (`Uuid::parse_str` alone also takes the
/// simple, braced and URN forms, which the schema calls invalid).
pub(super) fn hyphenated_uuid(raw: &str) -> Option<Uuid> {
    (raw.len() == 36)
        .then(|| Uuid::parse_str(raw).ok())
        .flatten()
}

#[derive(Serialize, ToSchema)]
pub struct TodoPage {
    pub items: Vec<Todo>,
    pub limit: u32,
    /// The `cursor` of the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The number of todos matching the filters over all pages; only with `count=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    /// Deprecated: the `offset` the request gave; absent when it gave none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(deprecated)]
    pub offset: Option<u32>,
}

#[utoipa::path(get, path = "/todos", params(ListParams, super::openapi::IfNoneMatchParam),
    responses((status = 200, body = TodoPage, headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "`If-None-Match` names the current `ETag`"),
        (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    id: Identity,
    cond: Conditional,
    AppQuery(p): AppQuery<ListParams>,
) -> Result<Cached<TodoPage>, ApiError> {
    let mut problems = Vec::new();
    let category = match p.category_id.as_deref() {
        None => None,
        Some("none") => Some(CategoryFilter::Uncategorised),
        Some(raw) => match hyphenated_uuid(raw) {
            Some(u) => Some(CategoryFilter::In(u)),
            None => {
                problems.push(FieldError {
                    field: "category_id".into(),
                    message: "must be a category id or `none`".into(),
                });
                None
            }
        },
    };
    let due_before = p
        .due_before
        .as_deref()
        .and_then(|d| parse_date("due_before", d, &mut problems));
    let due_after = p
        .due_after
        .as_deref()
        .and_then(|d| parse_date("due_after", d, &mut problems));
    let limit = p.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        problems.push(FieldError {
            field: "limit".into(),
            message: format!("must be between 1 and {MAX_PAGE_SIZE}"),
        });
    }
    let sort = p.sort.unwrap_or_default();
    let order = p.order.unwrap_or_default();
    #[allow(deprecated)]
    let offset = p.offset;
    let start = match (p.cursor.as_deref(), offset) {
        (Some(_), Some(_)) => {
            problems.push(FieldError {
                field: "offset".into(),
                message: "cannot be combined with `cursor`".into(),
            });
            PageStart::First
        }
        (Some(raw), None) => match Cursor::decode(raw, sort, order) {
            Ok(c) => PageStart::After(c),
            Err(e) => {
                problems.push(FieldError {
                    field: "cursor".into(),
                    message: e.to_string(),
                });
                PageStart::First
            }
        },
        (None, Some(n)) if n > 0 => PageStart::Offset(n),
        (None, _) => PageStart::First,
    };
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let filter = TodoFilter {
        completed: p.completed,
        category,
        due_before,
        due_after,
        sort,
        order,
        limit,
        start,
        count: p.count.unwrap_or(false),
    };
    let versions = state
        .store
        .data_versions(id.user_id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    let tag = cond.tag("todos", id.user_id, &version(versions.todos));
    cond.answer(tag, async {
        let page = state.store.list_todos(id.user_id, &filter).await?;
        Ok(TodoPage {
            items: page.items,
            limit: filter.limit,
            next: page.next.map(|c| c.encode()),
            total: page.total,
            offset,
        })
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTodo {
    /// One line: at least one visible character, no control characters, at most 200 characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    title: String,
    #[serde(default)]
    #[schema(max_length = 10000, pattern = r"^[^\u0000]*$")]
    description: Option<String>,
    #[serde(default)]
    completed: Option<bool>,
    /// One of the caller's categories (`409 unknown_category` otherwise).
    #[serde(default)]
    category_id: Option<Uuid>,
    /// `YYYY-MM-DD`
    #[serde(default, rename = "due_on")]
    #[schema(format = Date)]
    due_date: Option<String>,
}

#[utoipa::path(post, path = "/todos", request_body = CreateTodo,
    responses((status = 201, body = Todo),
        (status = 409, body = ErrorBody, description = "`category_id` names no category of the caller (`unknown_category`)")))]
pub async fn create(
    State(state): State<AppState>,
    id: Identity,
    AppJson(req): AppJson<CreateTodo>,
) -> Result<(StatusCode, Json<Todo>), ApiError> {
    let mut problems = Vec::new();
    let title = TodoTitle::parse(&req.title)
        .map_err(push(&mut problems, "title"))
        .ok();
    let description = TodoDescription::parse(req.description.as_deref().unwrap_or(""))
        .map_err(push(&mut problems, "description"))
        .ok();
    let due_date = req
        .due_date
        .as_deref()
        .and_then(|d| parse_date("due_on", d, &mut problems));
    let (Some(title), Some(description), true) = (title, description, problems.is_empty()) else {
        return Err(ApiError::Validation(problems));
    };
    let completed = req.completed.unwrap_or(false);
    let todo = state
        .store
        .create_todo(
            id.user_id,
            &NewTodo {
                title,
                description,
                completed,
                category_id: req.category_id,
                due_date,
            },
        )
        .await?;
    state.metrics.todos_created.inc();
    if completed {
        state.metrics.todos_completed.inc();
    }
    Ok((StatusCode::CREATED, Json(todo)))
}

#[utoipa::path(get, path = "/todos/{id}", params(("id" = Uuid, Path), super::openapi::IfNoneMatchParam),
    responses((status = 200, body = Todo, headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "`If-None-Match` names the current `ETag`"),
        (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    id: Identity,
    cond: Conditional,
    AppPath(todo_id): AppPath<Uuid>,
) -> Result<Cached<Todo>, ApiError> {
    let versions = state
        .store
        .data_versions(id.user_id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    // The path is part of the tag: each todo has its own.
    let mut at = version(versions.todos).to_vec();
    at.extend_from_slice(todo_id.as_bytes());
    let tag = cond.tag("todo", id.user_id, &at);
    cond.answer(tag, async {
        state
            .store
            .todo(id.user_id, todo_id)
            .await?
            .ok_or(ApiError::NotFound)
    })
    .await
}

/// At least one field (`minProperties`, set in `openapi.rs`); absent fields are left as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTodo {
    /// As on create; `null` is refused (a title cannot be removed).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$")]
    title: Option<Option<String>>,
    /// `null` is refused; `""` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = String, max_length = 10000, pattern = r"^[^\u0000]*$")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = bool)]
    completed: Option<Option<bool>>,
    /// `null` removes the todo from its category.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    category_id: Option<Option<Uuid>>,
    /// `YYYY-MM-DD`; `null` clears it.
    #[serde(default, rename = "due_on", deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, format = Date)]
    due_date: Option<Option<String>>,
}

#[utoipa::path(patch, path = "/todos/{id}", params(("id" = Uuid, Path)), request_body = PatchTodo,
    responses((status = 200, body = Todo), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`category_id` names no category of the caller (`unknown_category`)")))]
pub async fn patch(
    State(state): State<AppState>,
    id: Identity,
    AppPath(todo_id): AppPath<Uuid>,
    AppJson(req): AppJson<PatchTodo>,
) -> Result<Json<Todo>, ApiError> {
    let mut problems = Vec::new();
    let mut patch = TodoPatch {
        category_id: req.category_id,
        ..TodoPatch::default()
    };
    match req.title {
        Some(Some(t)) => {
            patch.title = TodoTitle::parse(&t)
                .map_err(push(&mut problems, "title"))
                .ok();
        }
        Some(None) => push(&mut problems, "title")("must not be null"),
        None => {}
    }
    match req.description {
        Some(Some(d)) => {
            patch.description = TodoDescription::parse(&d)
                .map_err(push(&mut problems, "description"))
                .ok();
        }
        Some(None) => push(&mut problems, "description")("must not be null"),
        None => {}
    }
    match req.completed {
        Some(Some(c)) => patch.completed = Some(c),
        Some(None) => push(&mut problems, "completed")("must not be null"),
        None => {}
    }
    match req.due_date {
        Some(Some(d)) => patch.due_date = parse_date("due_on", &d, &mut problems).map(Some),
        Some(None) => patch.due_date = Some(None),
        None => {}
    }
    if problems.is_empty() && patch.is_empty() {
        problems.push(FieldError {
            field: "body".into(),
            message: "no field to update".into(),
        });
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let todo = state
        .store
        .update_todo(id.user_id, todo_id, &patch)
        .await?
        .ok_or(ApiError::NotFound)?;
    if patch.completed == Some(true) {
        state.metrics.todos_completed.inc();
    }
    Ok(Json(todo))
}

#[utoipa::path(delete, path = "/todos/{id}", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    id: Identity,
    AppPath(todo_id): AppPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_todo(id.user_id, todo_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}
