//! `ApiError`: the one type at the backend's HTTP edge that knows status codes.
//!
//! Body shape: `{"error":{"code":"not_found","message":"..."}}`, with `details` (per field) on 422.
//! 5xx bodies are opaque; the cause is put in a response extension and logged by
//! [`log_internal_errors`] inside the request span, never sent to the client.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

/// One invalid field in a 422 answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request body is not valid JSON")]
    MalformedJson(String),
    #[error("bad request")]
    BadRequest(String),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("missing or invalid identity assertion")]
    Unauthenticated,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("not found")]
    NotFound,
    #[error("conflict")]
    Conflict {
        code: &'static str,
        message: &'static str,
    },
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// `Api-Version` names no version this backend serves (or names several).
    #[error("unsupported API version")]
    UnsupportedApiVersion,
    #[error("service unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// Carries the cause of a 5xx from `into_response` to the logging middleware.
#[derive(Clone)]
struct InternalCause(std::sync::Arc<String>);

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code.
    pub code: &'static str,
    /// Human-readable; never internal detail.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<FieldError>>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) | Self::BadRequest(_) | Self::UnsupportedApiVersion => {
                StatusCode::BAD_REQUEST
            }
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthenticated | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::BadRequest(_) => "bad_request",
            Self::Validation(_) => "validation_failed",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidCredentials => "invalid_credentials",
            Self::NotFound => "not_found",
            Self::Conflict { code, .. } => code,
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::UnsupportedApiVersion => "unsupported_api_version",
            Self::Unavailable => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// A single-field validation error.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }

    fn message(&self) -> String {
        match self {
            Self::MalformedJson(m) | Self::BadRequest(m) => m.clone(),
            Self::Conflict { message, .. } => (*message).to_owned(),
            Self::Validation(_) => "one or more fields are invalid".into(),
            Self::Unauthenticated => "a valid identity assertion from the proxy is required".into(),
            Self::InvalidCredentials => "invalid credentials".into(),
            Self::NotFound => "not found".into(),
            Self::PayloadTooLarge => "request body is too large".into(),
            Self::UnsupportedMediaType => "expected Content-Type: application/json".into(),
            Self::UnsupportedApiVersion => format!(
                "Api-Version must be one of {}",
                crate::versions::ApiVersion::ALL
                    .map(|v| v.as_str())
                    .join(", ")
            ),
            Self::Unavailable => "service unavailable, try again later".into(),
            Self::Internal(_) => "internal error".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let details = match &self {
            Self::Validation(d) => Some(d.clone()),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.message(),
                details,
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if matches!(self, Self::Unauthenticated) {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"todo-backend\""),
            );
        }
        if let Self::Internal(cause) = &self {
            resp.extensions_mut()
                .insert(InternalCause(std::sync::Arc::new(format!("{cause:#}"))));
        }
        resp
    }
}

/// Logs the cause of every 5xx produced by an `ApiError`, inside the request's span.
pub async fn log_internal_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if let Some(InternalCause(cause)) = resp.extensions().get::<InternalCause>() {
        tracing::error!(error = %cause, "request failed");
    }
    resp
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Self::Conflict {
                code: "conflict",
                message: "a conflicting record exists",
            },
            // The request is well formed; the caller's data does not allow it (RFC 9110 409).
            StoreError::InvalidReference => Self::Conflict {
                code: "unknown_category",
                message: "category_id names no category of yours",
            },
            StoreError::Cycle => Self::Conflict {
                code: "category_cycle",
                message: "a category cannot be moved under itself or one of its subcategories",
            },
            StoreError::HasChildren => Self::Conflict {
                code: "category_has_children",
                message: "delete or move the subcategories first",
            },
            // No connection, or the one in hand broke (the database restarted): try again later.
            StoreError::Database(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::WorkerCrashed,
            ) => Self::Unavailable,
            other => Self::Internal(other.into()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => Self::Validation(vec![FieldError {
                field: "body".into(),
                message: serde_message(&e.body_text()),
            }]),
            JsonRejection::JsonSyntaxError(e) => {
                Self::MalformedJson(format!("malformed JSON: {}", serde_message(&e.body_text())))
            }
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType,
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge
            }
            other => Self::BadRequest(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::field("query", serde_message(&r.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        Self::NotFound
    }
}

/// axum prefixes serde's message with its own sentence; keep serde's part, which names the field.
fn serde_message(text: &str) -> String {
    text.rsplit_once(": ")
        .map_or(text, |(_, m)| m)
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_variant_has_its_status_code_and_a_json_body() {
        let cases: Vec<(ApiError, StatusCode, &str)> = vec![
            (
                ApiError::MalformedJson("m".into()),
                StatusCode::BAD_REQUEST,
                "malformed_json",
            ),
            (
                ApiError::BadRequest("b".into()),
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            (
                ApiError::field("title", "must not be empty"),
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
            (
                ApiError::Unauthenticated,
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
            ),
            (
                ApiError::InvalidCredentials,
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
            ),
            (ApiError::NotFound, StatusCode::NOT_FOUND, "not_found"),
            (
                ApiError::Conflict {
                    code: "email_taken",
                    message: "m",
                },
                StatusCode::CONFLICT,
                "email_taken",
            ),
            (
                ApiError::PayloadTooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
            ),
            (
                ApiError::UnsupportedMediaType,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
            (
                ApiError::UnsupportedApiVersion,
                StatusCode::BAD_REQUEST,
                "unsupported_api_version",
            ),
            (
                ApiError::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
            ),
            (
                ApiError::Internal(anyhow::anyhow!("secret db detail")),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
            ),
        ];
        for (err, status, code) in cases {
            let resp = err.into_response();
            assert_eq!(resp.status(), status, "{code}");
            assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
            let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["error"]["code"], code);
            assert!(!String::from_utf8_lossy(&body).contains("secret db detail"));
        }
    }

    #[test]
    fn validation_errors_carry_field_details() {
        let resp = ApiError::field("title", "must not be empty").into_response();
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}
