//! Router assembly and layers. Handlers live in `http/users.rs`, `http/todos.rs` and
//! `http/categories.rs`; the OpenAPI document is generated from their annotations.

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Query};
use axum::http::{HeaderName, Request, StatusCode};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use self::openapi::EdgeContract;
use crate::error::ApiError;
use crate::versions::{self, ApiVersion};
use crate::AppState;

pub mod categories;
pub mod conditional;
pub mod openapi;
pub mod todos;
pub mod users;

/// JSON body extractor whose rejections use the API's error shape (400/413/415/422).
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct AppJson<T>(pub T);

/// Query-string extractor whose rejections use the API's error shape (422).
#[derive(FromRequestParts)]
#[from_request(via(Query), rejection(ApiError))]
pub struct AppQuery<T>(pub T);

/// Path extractor: an id that does not parse as a UUID cannot name anything, so its rejection is a
/// 404, like an id that does not exist.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct AppPath<T>(pub T);

/// Deserializes a field that distinguishes "absent" (`None`) from "null" (`Some(None)`).
pub fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(de).map(Some)
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "todo-backend",
        description = "The todo service, as clients reach it through edge-proxy: every operation except registration needs a bearer token, which the proxy verifies."
    ),
    paths(
        users::register,
        users::me,
        todos::list,
        todos::create,
        todos::get_one,
        todos::patch,
        todos::delete,
        categories::list,
        categories::create,
        categories::patch,
        categories::delete,
    ),
    components(schemas(
        crate::error::ErrorBody,
        crate::error::ErrorDetail,
        crate::error::FieldError,
        crate::domain::TodoSort,
        crate::domain::SortOrder
    )),
    modifiers(&EdgeContract)
)]
pub struct ApiDoc;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DocQuery {
    version: Option<String>,
}

/// The OpenAPI document of `?version=<v>`, else of the request's API version.
async fn openapi(
    axum::Extension(negotiated): axum::Extension<ApiVersion>,
    AppQuery(q): AppQuery<DocQuery>,
) -> Result<Json<&'static serde_json::Value>, ApiError> {
    let version = match q.version.as_deref() {
        None => negotiated,
        Some(v) => ApiVersion::parse(v).ok_or(ApiError::UnsupportedApiVersion)?,
    };
    Ok(Json(versions::document(version)))
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// The public API router with its layers.
pub fn router(state: AppState, request_timeout: Duration, max_body_bytes: usize) -> Router {
    let routes = Router::new()
        .route("/auth/register", post(users::register))
        .route("/me", get(users::me))
        .route(
            "/internal/credentials/verify",
            post(users::verify_credentials),
        )
        .route("/todos", get(todos::list).post(todos::create))
        .route(
            "/todos/{id}",
            get(todos::get_one)
                .patch(todos::patch)
                .delete(todos::delete),
        )
        .route(
            "/categories",
            get(categories::list).post(categories::create),
        )
        .route(
            "/categories/{id}",
            axum::routing::patch(categories::patch).delete(categories::delete),
        )
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        // Innermost: metrics see the matched route template and the final status.
        .route_layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track,
        ))
        // Around the handler and its metrics: an older version's request is upgraded before the
        // handler sees it and the answer taken back after (`versions.rs`).
        .route_layer(middleware::from_fn_with_state(
            max_body_bytes,
            versions::negotiate,
        ))
        .with_state(state);

    routes.layer(
        // Outermost first: the trace span exists before anything else runs, so every log line of the
        // request (including the 5xx cause) carries its request id.
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(
                X_REQUEST_ID.clone(),
                MakeRequestUuid,
            ))
            .layer(
                TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
                    let id = header(X_REQUEST_ID.as_str()).unwrap_or("-");
                    // The trace id of the proxy's W3C `traceparent` (00-<trace id>-<span id>-<flags>).
                    let trace_id = header("traceparent")
                        .and_then(|t| t.split('-').nth(1))
                        .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
                        .unwrap_or("-");
                    tracing::info_span!(
                        "request",
                        request_id = %id,
                        trace_id = %trace_id,
                        method = %req.method(),
                        path = %req.uri().path()
                    )
                }),
            )
            .layer(PropagateRequestIdLayer::new(X_REQUEST_ID.clone()))
            .layer(middleware::from_fn(crate::error::log_internal_errors))
            // A handler that runs past the deadline is cut off with 503 rather than holding the
            // connection and a pool slot indefinitely.
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                request_timeout,
            ))
            // Bodies over the limit are refused by the JSON extractor with 413.
            .layer(DefaultBodyLimit::max(max_body_bytes)),
    )
}
