//! The OpenAPI document (`GET /openapi.json`), as a client sees the API through edge-proxy.
//!
//! Operations are generated from the handlers' annotations; [`EdgeContract`] then adds what every
//! operation shares, so no handler can forget it:
//! - the bearer security scheme (the proxy verifies the token; `/auth/register` needs none);
//! - the statuses any operation can answer: 401 (authenticated ones), 400, 413, 415 and 422 (ones
//!   with a JSON body), 405, 429 and 503 — from the backend or from the proxy in front of it;
//! - the proxy's own error shape (`EdgeError`, `{"error":"<code>"}`) next to the backend's
//!   (`ErrorBody`, `{"error":{"code","message"}}`) wherever either can answer.
//!
//! `.ci/schemathesis` fuzzes this document through the real proxy with every check on.

use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Components, ContentBuilder, OpenApi, RefOr};
use utoipa::Modify;

/// Name of the security scheme in `components.securitySchemes`.
const BEARER: &str = "bearer";

/// Operations a caller reaches without a token.
const PUBLIC: &[(&str, &str)] = &[("/auth/register", "post")];

/// Bodies that must name at least one field (an empty PATCH is refused with 422). Set here, not
/// with `#[schema(min_properties = 1)]`: utoipa-gen 5.5.0 renders that as `maxProperties`.
const AT_LEAST_ONE_FIELD: &[&str] = &["PatchTodo", "PatchCategory"];

/// `If-None-Match` of the conditional GETs (`http/conditional.rs`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfNoneMatchParam {
    /// The `ETag` of an earlier answer of this request (or `*`): `304` while it is current.
    #[param(rename = "If-None-Match")]
    #[allow(dead_code)]
    if_none_match: Option<String>,
}

/// Adds the contract every operation shares (see the module docs).
pub struct EdgeContract;

impl Modify for EdgeContract {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Components::new);
        components.security_schemes.insert(
            BEARER.to_owned(),
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.schemas.insert(
            "EdgeError".to_owned(),
            RefOr::T(Schema::Object(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .description(Some(
                        "An answer edge-proxy generated itself (its `error` is a stable code)",
                    ))
                    .property("error", ObjectBuilder::new().schema_type(Type::String))
                    .required("error")
                    .build(),
            )),
        );
        for name in AT_LEAST_ONE_FIELD {
            if let Some(RefOr::T(Schema::Object(o))) = components.schemas.get_mut(*name) {
                o.min_properties = Some(1);
                o.max_properties = None;
            }
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, op) in operations(item) {
                let public = PUBLIC.contains(&(path.as_str(), method));
                add_shared(op, public);
            }
        }
    }
}

fn operations(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("post", item.post.as_mut()),
        ("put", item.put.as_mut()),
        ("patch", item.patch.as_mut()),
        ("delete", item.delete.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
    .collect()
}

/// An error response whose body is either side's error shape.
fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    let either = OneOfBuilder::new()
        .item(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
            "ErrorBody",
        )))
        .item(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
            "EdgeError",
        )));
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(either)).build(),
            )
            .build(),
    )
}

fn add_shared(op: &mut Operation, public: bool) {
    op.security = Some(if public {
        vec![SecurityRequirement::default()]
    } else {
        vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]
    });
    let mut shared: Vec<(&str, &str)> = vec![
        ("405", "method not allowed on this path (with `Allow`)"),
        (
            "429",
            "too many requests or connections (with `Retry-After`)",
        ),
        (
            "503",
            "a dependency is unavailable or the request timed out (with `Retry-After` at the edge)",
        ),
    ];
    if !public {
        shared.push((
            "401",
            "no usable token, or it is invalid or revoked (with `WWW-Authenticate`)",
        ));
    }
    if op.request_body.is_some() {
        shared.extend([
            ("400", "malformed JSON or a malformed request"),
            ("413", "the body is over the limit"),
            ("415", "the body is not `application/json`"),
            ("422", "a field is invalid (`details` names each)"),
        ]);
    }
    for (status, description) in shared {
        // Replace what a handler declared for these statuses, so either error shape conforms.
        op.responses
            .responses
            .insert(status.to_owned(), error_response(description));
    }
}
