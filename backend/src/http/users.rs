//! Registration, the caller's profile, and the credential check the proxy calls on login.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::conditional::{Cached, Conditional};
use super::AppJson;
use crate::domain::{Email, Password, User};
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::identity::{Identity, ProxyCall};
use crate::store::StoreError;
use crate::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Normalised (NFKC, trimmed, lower-case) before it is stored.
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// 8 to 256 characters.
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
}

#[utoipa::path(post, path = "/auth/register", request_body = RegisterRequest,
    responses(
        (status = 201, body = User),
        (status = 409, body = ErrorBody, description = "registration not possible with these details"),
    ))]
pub async fn register(
    State(state): State<AppState>,
    AppJson(req): AppJson<RegisterRequest>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let mut problems = Vec::new();
    let email = Email::parse(&req.email)
        .map_err(|m| problems.push(field("email", m)))
        .ok();
    let password = Password::parse(req.password)
        .map_err(|m| problems.push(field("password", m)))
        .ok();
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::Validation(problems));
    };
    let hash = state
        .passwords
        .hash(password.as_str().to_owned())
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let user = state
        .store
        .create_user(&email, &hash)
        .await
        .map_err(|e| match e {
            StoreError::Conflict => ApiError::Conflict {
                code: "registration_conflict",
                message: "cannot register with these details",
            },
            other => other.into(),
        })?;
    state.metrics.users_registered.inc();
    Ok((StatusCode::CREATED, Json(user)))
}

fn field(name: &str, message: &str) -> FieldError {
    FieldError {
        field: name.to_owned(),
        message: message.to_owned(),
    }
}

#[utoipa::path(get, path = "/me", params(super::openapi::IfNoneMatchParam),
    responses((status = 200, body = User, headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "`If-None-Match` names the current `ETag`")))]
pub async fn me(
    State(state): State<AppState>,
    id: Identity,
    cond: Conditional,
) -> Result<Cached<User>, ApiError> {
    // A valid assertion for a user that no longer exists is treated as unauthenticated.
    let user = state
        .store
        .user(id.user_id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    // The account has no version of its own (nothing changes it yet): the tag is of its content.
    let content = serde_json::to_vec(&user).map_err(|e| ApiError::Internal(e.into()))?;
    let tag = cond.tag("me", id.user_id, &content);
    cond.answer(tag, async { Ok(user) }).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub email: String,
    pub password: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct VerifiedUser {
    pub user_id: uuid::Uuid,
    pub email: String,
    pub roles: Vec<String>,
}

/// The upper bound on a submitted password here matches the proxy's login body cap; anything longer
/// cannot be a registered password and is refused without hashing.
const MAX_VERIFY_PASSWORD_BYTES: usize = 1024;

/// `POST /internal/credentials/verify`: called by edge-proxy on login, with its service assertion
/// ([`ProxyCall`]); anyone else gets 404. Not in the public OpenAPI document.
/// `200` with the user, or `401` for a wrong password, an unknown or a disabled user
/// (indistinguishable: each costs one argon2 verification).
pub async fn verify_credentials(
    _proxy: ProxyCall,
    State(state): State<AppState>,
    AppJson(req): AppJson<VerifyRequest>,
) -> Result<Json<VerifiedUser>, ApiError> {
    // Malformed emails and oversized passwords still cost one dummy verification, so the answer's
    // timing does not separate them from unknown accounts.
    let email = Email::parse(&req.email).ok();
    let password = if req.password.len() <= MAX_VERIFY_PASSWORD_BYTES {
        req.password
    } else {
        String::new()
    };
    let user = match email {
        Some(email) if !password.is_empty() => {
            crate::credentials::check(state.store.as_ref(), &state.passwords, &email, password)
                .await
                .map_err(ApiError::Internal)?
        }
        _ => {
            let _ = state.passwords.verify(None, password).await;
            None
        }
    };
    let user = user.ok_or(ApiError::InvalidCredentials)?;
    Ok(Json(VerifiedUser {
        user_id: user.id,
        email: user.email,
        roles: user.roles,
    }))
}
