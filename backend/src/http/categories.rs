//! Categories as a tree: create (optionally under a parent), list as a tree, rename, move, delete.
//!
//! Delete rule: a category with subcategories is refused (409 `category_has_children`, move or
//! delete them first); todos in a deleted category are kept and become uncategorised.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::conditional::{version, Cached, Conditional};
use super::{double_option, AppJson, AppPath};
use crate::domain::{category_tree, Category, CategoryName, CategoryNode};
use crate::error::{ApiError, ErrorBody};
use crate::identity::Identity;
use crate::AppState;

#[utoipa::path(get, path = "/categories", params(super::openapi::IfNoneMatchParam),
    responses((status = 200, body = Vec<CategoryNode>, headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "`If-None-Match` names the current `ETag`")))]
pub async fn list(
    State(state): State<AppState>,
    id: Identity,
    cond: Conditional,
) -> Result<Cached<std::sync::Arc<Vec<CategoryNode>>>, ApiError> {
    let versions = state
        .store
        .data_versions(id.user_id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    let tag = cond.tag("categories", id.user_id, &version(versions.tree));
    cond.answer(tag, async {
        let load = async {
            let flat = state.store.categories(id.user_id).await?;
            Ok(category_tree(flat))
        };
        let tree = state
            .trees
            .get_or_load(id.user_id, versions.tree, load)
            .await?;
        Ok(tree)
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCategory {
    /// One line: at least one visible character, no control characters, at most 100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    name: String,
    /// One of the caller's categories (`409 unknown_category` otherwise).
    #[serde(default)]
    parent_id: Option<Uuid>,
}

#[utoipa::path(post, path = "/categories", request_body = CreateCategory,
    responses((status = 201, body = Category),
        (status = 409, body = ErrorBody, description = "`parent_id` names no category of the caller (`unknown_category`)")))]
pub async fn create(
    State(state): State<AppState>,
    id: Identity,
    AppJson(req): AppJson<CreateCategory>,
) -> Result<(StatusCode, Json<Category>), ApiError> {
    let name = CategoryName::parse(&req.name).map_err(|m| ApiError::field("name", m))?;
    let cat = state
        .store
        .create_category(id.user_id, &name, req.parent_id)
        .await
        .map_err(parent_reference)?;
    Ok((StatusCode::CREATED, Json(cat)))
}

/// A missing parent is named as such (the store reports any missing category the same way).
fn parent_reference(e: crate::store::StoreError) -> ApiError {
    match e {
        crate::store::StoreError::InvalidReference => ApiError::Conflict {
            code: "unknown_category",
            message: "parent_id names no category of yours",
        },
        other => other.into(),
    }
}

/// At least one field (`minProperties`, set in `openapi.rs`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchCategory {
    /// As on create; `null` is refused.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = String, min_length = 1, max_length = 100, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$")]
    name: Option<Option<String>>,
    /// Moves the category; `null` moves it to the top level.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    parent_id: Option<Option<Uuid>>,
}

#[utoipa::path(patch, path = "/categories/{id}", params(("id" = Uuid, Path)), request_body = PatchCategory,
    responses((status = 200, body = Category), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`parent_id` names no category of the caller (`unknown_category`), or the move would put the category under itself (`category_cycle`)")))]
pub async fn patch(
    State(state): State<AppState>,
    id: Identity,
    AppPath(cat_id): AppPath<Uuid>,
    AppJson(req): AppJson<PatchCategory>,
) -> Result<Json<Category>, ApiError> {
    let name = match req.name {
        Some(Some(n)) => Some(CategoryName::parse(&n).map_err(|m| ApiError::field("name", m))?),
        Some(None) => return Err(ApiError::field("name", "must not be null")),
        None => None,
    };
    if name.is_none() && req.parent_id.is_none() {
        return Err(ApiError::field("body", "no field to update"));
    }
    let cat = state
        .store
        .update_category(id.user_id, cat_id, name.as_ref(), req.parent_id)
        .await
        .map_err(parent_reference)?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(cat))
}

#[utoipa::path(delete, path = "/categories/{id}", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the category has subcategories (`category_has_children`)")))]
pub async fn delete(
    State(state): State<AppState>,
    id: Identity,
    AppPath(cat_id): AppPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_category(id.user_id, cat_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}
