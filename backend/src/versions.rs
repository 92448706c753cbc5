//! API versions (DESIGN.md 7.3, `docs/versioning.md`). Handlers know only the current version; every
//! incompatible change since an older one is a [`VersionChange`] in [`CHANGES`], applied at the HTTP
//! boundary by [`negotiate`]: a request of an older version is brought up to the current shape (the
//! changes oldest first, as each one's `request` upgrades from the version before it), and the answer
//! is taken back down (newest first, each `response` undoing its change). The OpenAPI document of a
//! version is the current one taken down the same way ([`document`]), so the documents differ by
//! exactly the changes.
//!
//! The version comes from the `Api-Version` header (edge-proxy resolves and sends exactly one);
//! without it the current version applies. A request in the current version is not buffered.

use std::sync::OnceLock;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::ApiError;

/// The request and answer header.
pub static API_VERSION: HeaderName = HeaderName::from_static("api-version");

/// The versions this backend serves, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiVersion {
    /// The original API.
    V2025_01_24,
    /// `due_date` → `due_on`; `GET /todos` counts only when asked (`count=true`).
    V2026_12_01,
}

impl ApiVersion {
    /// Every version, oldest first.
    pub const ALL: [Self; 2] = [Self::V2025_01_24, Self::V2026_12_01];
    /// What handlers implement, and the version of requests that name none.
    pub const CURRENT: Self = Self::V2026_12_01;

    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2025_01_24 => "2025-01-24",
            Self::V2026_12_01 => "2026-12-01",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }

    /// The changes an answer in this version must be taken back through, newest first.
    fn changes_since(self) -> impl Iterator<Item = &'static VersionChange> {
        CHANGES.iter().rev().filter(move |c| c.version > self)
    }
}

/// The route a request matched, as the changes see it.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    pub method: &'a Method,
    /// The route template (`/todos/{id}`).
    pub route: &'a str,
}

/// What a request change may rewrite: the query pairs, in order, and the JSON body.
#[derive(Debug, Default)]
pub struct Incoming {
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
}

/// One incompatible change, introduced in `version`.
pub struct VersionChange {
    pub version: ApiVersion,
    /// One line for the migration guide (`docs/versioning.md` lists the same).
    pub summary: &'static str,
    /// Turns a request of the version before `version` into one of `version`.
    pub request: fn(&Endpoint<'_>, &mut Incoming),
    /// Turns an answer of `version` into one of the version before.
    pub response: fn(&Endpoint<'_>, &mut Value),
    /// Turns the OpenAPI document of `version` into the one of the version before.
    pub openapi: fn(&mut Value),
}

/// Every change, oldest first.
pub static CHANGES: &[VersionChange] = &[
    VersionChange {
        version: ApiVersion::V2026_12_01,
        summary: "A todo's `due_date` is `due_on` (field, `sort` value, validation errors).",
        request: due_on::request,
        response: due_on::response,
        openapi: due_on::openapi,
    },
    VersionChange {
        version: ApiVersion::V2026_12_01,
        summary: "`GET /todos` answers `total` only with `count=true` (it was the default).",
        request: count_opt_in::request,
        response: |_, _| {},
        openapi: count_opt_in::openapi,
    },
];

/// The version a request asks for: its `Api-Version` (every copy the same), else the current one.
fn requested(headers: &axum::http::HeaderMap) -> Result<ApiVersion, ApiError> {
    let mut asked = None;
    for value in headers.get_all(&API_VERSION) {
        let v = value
            .to_str()
            .ok()
            .and_then(|s| ApiVersion::parse(s.trim()))
            .ok_or(ApiError::UnsupportedApiVersion)?;
        if asked.is_some_and(|a| a != v) {
            return Err(ApiError::UnsupportedApiVersion);
        }
        asked = Some(v);
    }
    Ok(asked.unwrap_or(ApiVersion::CURRENT))
}

/// Middleware (a route layer, so the matched route is known): resolves the version, puts it in the
/// request's extensions, applies the changes to an older version's request and answer, and sets
/// `Api-Version` on the answer. `max_body` bounds the request body it buffers (the JSON limit).
pub async fn negotiate(State(max_body): State<usize>, req: Request, next: Next) -> Response {
    let version = match requested(req.headers()) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let mut req = req;
    req.extensions_mut().insert(version);
    if version == ApiVersion::CURRENT {
        let mut resp = next.run(req).await;
        resp.headers_mut()
            .insert(API_VERSION.clone(), version.header_value());
        return resp;
    }
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let endpoint = Endpoint {
        method: &method,
        route: &route,
    };
    let req = match upgrade_request(&endpoint, version, req, max_body).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let resp = next.run(req).await;
    let mut resp = downgrade_response(&endpoint, version, resp).await;
    resp.headers_mut()
        .insert(API_VERSION.clone(), version.header_value());
    resp
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

async fn upgrade_request(
    endpoint: &Endpoint<'_>,
    version: ApiVersion,
    req: Request,
    max_body: usize,
) -> Result<Request, ApiError> {
    let (mut parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, max_body)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    // What does not parse is passed on as it came: the handler answers it in its usual way.
    let query = parts
        .uri
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok());
    let body = (is_json(&parts.headers) && !bytes.is_empty())
        .then(|| serde_json::from_slice::<Value>(&bytes).ok())
        .flatten();
    let had_query = query.is_some();
    let mut incoming = Incoming {
        query: query.unwrap_or_default(),
        body,
    };
    for change in CHANGES.iter().filter(|c| c.version > version) {
        (change.request)(endpoint, &mut incoming);
    }
    if had_query || !incoming.query.is_empty() {
        let query = serde_urlencoded::to_string(&incoming.query).map_err(|_| {
            ApiError::Internal(anyhow::anyhow!("re-encoding an upgraded query failed"))
        })?;
        let path = parts.uri.path();
        let target = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        parts.uri = target
            .parse()
            .map_err(|_| ApiError::BadRequest("the request target is not valid".into()))?;
    }
    let bytes = match incoming.body {
        Some(v) => Bytes::from(serde_json::to_vec(&v).map_err(|e| ApiError::Internal(e.into()))?),
        None => bytes,
    };
    parts
        .headers
        .insert(header::CONTENT_LENGTH, bytes.len().into());
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

async fn downgrade_response(
    endpoint: &Endpoint<'_>,
    version: ApiVersion,
    resp: Response,
) -> Response {
    if !is_json(resp.headers()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    // The backend's own JSON answer, already bounded by what the handler built.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::Internal(anyhow::anyhow!("reading an answer to downgrade failed"))
            .into_response();
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    for change in version.changes_since() {
        (change.response)(endpoint, &mut value);
    }
    let bytes = match serde_json::to_vec(&value) {
        Ok(b) => b,
        Err(e) => return ApiError::Internal(e.into()).into_response(),
    };
    parts
        .headers
        .insert(header::CONTENT_LENGTH, bytes.len().into());
    Response::from_parts(parts, Body::from(bytes))
}

/// The OpenAPI document of `version`: the current one taken back through every change since.
pub fn document(version: ApiVersion) -> &'static Value {
    static DOCS: OnceLock<Vec<Value>> = OnceLock::new();
    let docs = DOCS.get_or_init(|| {
        let current = serde_json::to_value(<crate::http::ApiDoc as utoipa::OpenApi>::openapi())
            .unwrap_or_default();
        ApiVersion::ALL
            .iter()
            .map(|&v| {
                let mut doc = current.clone();
                for change in v.changes_since() {
                    (change.openapi)(&mut doc);
                }
                doc["info"]["version"] = v.as_str().into();
                doc
            })
            .collect()
    });
    let i = ApiVersion::ALL
        .iter()
        .position(|&v| v == version)
        .unwrap_or_default();
    &docs[i]
}

/// Renames key `a` to `b` and `b` to `a` in a JSON object (a change's rename in either direction).
fn swap_keys(v: &mut Value, a: &str, b: &str) {
    let Some(obj) = v.as_object_mut() else {
        return;
    };
    let va = obj.remove(a);
    let vb = obj.remove(b);
    if let Some(x) = va {
        obj.insert(b.to_owned(), x);
    }
    if let Some(x) = vb {
        obj.insert(a.to_owned(), x);
    }
}

/// `s` with the words `a` and `b` exchanged.
fn swap_words(s: &str, a: &str, b: &str) -> String {
    const MARK: &str = "\u{0}";
    s.replace(a, MARK).replace(b, a).replace(MARK, b)
}

/// Swaps `a` and `b` in a 422's `details[].field` and in its `message`.
fn swap_in_error(v: &mut Value, a: &str, b: &str) {
    let Some(err) = v.get_mut("error") else {
        return;
    };
    if let Some(m) = err.get_mut("message") {
        if let Some(text) = m.as_str() {
            *m = swap_words(text, a, b).into();
        }
    }
    for d in err
        .get_mut("details")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        for key in ["field", "message"] {
            if let Some(f) = d.get_mut(key) {
                if let Some(text) = f.as_str() {
                    *f = swap_words(text, a, b).into();
                }
            }
        }
    }
}

/// 2026-12-01: a todo's `due_date` became `due_on` (dates are `_on`, times `_at`).
mod due_on {
    use super::*;

    const OLD: &str = "due_date";
    const NEW: &str = "due_on";

    fn is_todos(e: &Endpoint<'_>) -> bool {
        e.route == "/todos" || e.route == "/todos/{id}"
    }

    pub(super) fn request(e: &Endpoint<'_>, r: &mut Incoming) {
        if !is_todos(e) {
            return;
        }
        // A swap, not a rename: an old client's `due_on` becomes the unknown `due_date` and is
        // refused as it would have been (and the refusal is taken back to `due_on`).
        for (k, v) in &mut r.query {
            if k == "sort" {
                *v = swap_words(v, OLD, NEW);
            }
        }
        if let Some(body) = &mut r.body {
            swap_keys(body, OLD, NEW);
        }
    }

    pub(super) fn response(e: &Endpoint<'_>, v: &mut Value) {
        if !is_todos(e) {
            return;
        }
        swap_in_error(v, OLD, NEW);
        if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
            items.iter_mut().for_each(|t| swap_keys(t, OLD, NEW));
        } else if v.get("id").is_some() {
            swap_keys(v, OLD, NEW);
        }
    }

    pub(super) fn openapi(doc: &mut Value) {
        let schemas = &mut doc["components"]["schemas"];
        for name in ["Todo", "CreateTodo", "PatchTodo"] {
            let s = &mut schemas[name];
            swap_keys(&mut s["properties"], OLD, NEW);
            if let Some(req) = s.get_mut("required").and_then(Value::as_array_mut) {
                for r in req.iter_mut() {
                    if r == NEW {
                        *r = OLD.into();
                    }
                }
            }
        }
        if let Some(values) = schemas["TodoSort"]["enum"].as_array_mut() {
            for v in values.iter_mut() {
                if v == NEW {
                    *v = OLD.into();
                }
            }
        }
    }
}

/// 2026-12-01: `GET /todos` counts the matching todos only when asked (`count=true`): a count of a
/// filtered list costs in proportion to what matches, and most clients never read it.
mod count_opt_in {
    use super::*;

    pub(super) fn request(e: &Endpoint<'_>, r: &mut Incoming) {
        if e.method == Method::GET
            && e.route == "/todos"
            && !r.query.iter().any(|(k, _)| k == "count")
        {
            r.query.push(("count".into(), "true".into()));
        }
    }

    pub(super) fn openapi(doc: &mut Value) {
        let params = doc["paths"]["/todos"]["get"]["parameters"].as_array_mut();
        for p in params.into_iter().flatten() {
            if p["name"] == "count" {
                p["description"] = "Whether the answer carries `total`, the number of matching \
                    todos over all pages. Default `true`; pass `false` when you do not need it."
                    .into();
            }
        }
        doc["components"]["schemas"]["TodoPage"]["properties"]["total"]["description"] =
            "The number of todos matching the filters over all pages; absent with `count=false`."
                .into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_dates_in_order_and_the_current_is_the_newest() {
        let names: Vec<&str> = ApiVersion::ALL.iter().map(|v| v.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert_eq!(ApiVersion::ALL.last(), Some(&ApiVersion::CURRENT));
        for v in ApiVersion::ALL {
            assert_eq!(ApiVersion::parse(v.as_str()), Some(v));
        }
        assert_eq!(ApiVersion::parse("2026-12-02"), None);
        assert!(CHANGES.windows(2).all(|w| w[0].version <= w[1].version));
        assert!(CHANGES.iter().all(|c| c.version > ApiVersion::ALL[0]));
    }

    #[test]
    fn a_rename_swaps_both_ways_so_old_clients_cannot_use_the_new_name() {
        let todos = Endpoint {
            method: &Method::POST,
            route: "/todos",
        };
        let mut r = Incoming {
            query: vec![("sort".into(), "due_date".into())],
            body: Some(serde_json::json!({"title": "t", "due_date": "2026-01-01", "due_on": "x"})),
        };
        due_on::request(&todos, &mut r);
        assert_eq!(r.query, [("sort".to_owned(), "due_on".to_owned())]);
        assert_eq!(
            r.body.unwrap(),
            serde_json::json!({"title": "t", "due_on": "2026-01-01", "due_date": "x"})
        );
        let mut answer = serde_json::json!({"items": [{"id": 1, "due_on": null}], "limit": 1});
        due_on::response(&todos, &mut answer);
        assert_eq!(
            answer,
            serde_json::json!({"items": [{"id": 1, "due_date": null}], "limit": 1})
        );
        let mut refusal = serde_json::json!({"error": {"code": "validation_failed", "message": "m",
            "details": [{"field": "due_on", "message": "must be a date"}]}});
        due_on::response(&todos, &mut refusal);
        assert_eq!(refusal["error"]["details"][0]["field"], "due_date");
        // Other endpoints are left alone.
        let mut me = serde_json::json!({"id": 1, "due_on": 2});
        due_on::response(
            &Endpoint {
                method: &Method::GET,
                route: "/me",
            },
            &mut me,
        );
        assert_eq!(me["due_on"], 2);
    }
}
