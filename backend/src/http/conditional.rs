//! Conditional GETs (DESIGN.md 7.2). An `ETag` names what an answer was built from: its kind, the
//! reader, the API version, the query and the version of the data it was read at (the user's
//! `DataVersions`, bumped in the same transaction as every write). A request whose `If-None-Match`
//! names the current tag gets `304` after one indexed read of the versions, before any list is
//! loaded or serialised. Every replica builds the same tag from the same row, so a write through one
//! replica changes the tag on all of them.
//!
//! The versions are read before the data: a write between the two reads gives a tag older than the
//! answer, which only costs the client one more full answer later, never a stale `304`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use headers::{ETag, HeaderMapExt as _, IfNoneMatch};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::versions::ApiVersion;

/// What every answer of a conditional GET says about caching: any cache may keep it for this user
/// only, and must revalidate it before each use.
const CACHE_CONTROL: HeaderValue = HeaderValue::from_static("private, no-cache");

/// The request side of a conditional GET: the client's `If-None-Match`, the negotiated API version
/// and the query (each part of the tag).
pub struct Conditional {
    if_none_match: Option<IfNoneMatch>,
    api: ApiVersion,
    query: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Conditional {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            // An `If-None-Match` that does not parse names no tag: the full answer follows.
            if_none_match: parts.headers.typed_get::<IfNoneMatch>(),
            api: parts
                .extensions
                .get::<ApiVersion>()
                .copied()
                .unwrap_or(ApiVersion::CURRENT),
            query: parts.uri.query().unwrap_or_default().to_owned(),
        })
    }
}

/// A strong entity tag and its header value.
#[derive(Debug, Clone)]
pub struct Tag {
    tag: ETag,
    value: HeaderValue,
}

impl Conditional {
    /// The tag of answer `kind` for `user`, read at data version `version` (or, for answers without
    /// a version, of `content`, the answer itself).
    pub fn tag(&self, kind: &str, user: Uuid, version: &[u8]) -> Tag {
        let mut h = Sha256::new();
        for part in [
            kind.as_bytes(),
            user.as_bytes(),
            self.api.as_str().as_bytes(),
            self.query.as_bytes(),
            version,
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        let digest = h.finalize();
        let text = format!("\"{}\"", hex::encode(&digest[..16]));
        Tag {
            tag: text
                .parse()
                .unwrap_or_else(|_| unreachable!("hex in quotes is an ETag")),
            value: HeaderValue::from_str(&text)
                .unwrap_or_else(|_| unreachable!("hex in quotes is a header value")),
        }
    }

    /// True when the client already has the answer `tag` names (weak comparison, RFC 9110 13.1.2).
    pub fn fresh(&self, tag: &Tag) -> bool {
        self.if_none_match
            .as_ref()
            .is_some_and(|m| !m.precondition_passes(&tag.tag))
    }

    /// `304` when the client has `tag`'s answer, else the answer `build` makes.
    pub async fn answer<T, F>(
        &self,
        tag: Tag,
        build: F,
    ) -> Result<Cached<T>, crate::error::ApiError>
    where
        F: std::future::Future<Output = Result<T, crate::error::ApiError>>,
    {
        if self.fresh(&tag) {
            return Ok(Cached::NotModified(tag));
        }
        Ok(Cached::Fresh(tag, build.await?))
    }
}

/// A conditional GET's answer: `304` with the tag, or `200` with the tag and the JSON body.
pub enum Cached<T> {
    NotModified(Tag),
    Fresh(Tag, T),
}

impl<T: Serialize> IntoResponse for Cached<T> {
    fn into_response(self) -> Response {
        let (tag, mut resp) = match self {
            Self::NotModified(tag) => (tag, StatusCode::NOT_MODIFIED.into_response()),
            Self::Fresh(tag, body) => (tag, Json(body).into_response()),
        };
        let h = resp.headers_mut();
        h.insert(header::ETAG, tag.value);
        h.insert(header::CACHE_CONTROL, CACHE_CONTROL);
        resp
    }
}

/// A version number as tag input.
pub fn version(n: i64) -> [u8; 8] {
    n.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(if_none_match: Option<&str>, api: ApiVersion, query: &str) -> Conditional {
        let mut h = axum::http::HeaderMap::new();
        if let Some(v) = if_none_match {
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
        }
        Conditional {
            if_none_match: h.typed_get(),
            api,
            query: query.into(),
        }
    }

    #[test]
    fn a_tag_changes_with_every_part_and_matches_as_rfc_9110_says() {
        let user = Uuid::from_u128(1);
        let c = cond(None, ApiVersion::CURRENT, "limit=1");
        let t = c.tag("todos", user, &version(7));
        let text = t.value.to_str().unwrap().to_owned();
        let others = [
            c.tag("todos", user, &version(8)),
            c.tag("categories", user, &version(7)),
            c.tag("todos", Uuid::from_u128(2), &version(7)),
            cond(None, ApiVersion::CURRENT, "limit=2").tag("todos", user, &version(7)),
            cond(None, ApiVersion::V2025_01_24, "limit=1").tag("todos", user, &version(7)),
        ];
        for o in &others {
            assert_ne!(o.value, t.value);
        }
        assert!(!c.fresh(&t), "no If-None-Match");
        for (header, fresh) in [
            (text.clone(), true),
            (format!("W/{text}"), true),
            (format!("\"x\", {text}"), true),
            ("*".to_owned(), true),
            ("\"x\"".to_owned(), false),
            ("not a tag".to_owned(), false),
        ] {
            assert_eq!(
                cond(Some(&header), ApiVersion::CURRENT, "limit=1").fresh(&t),
                fresh,
                "{header}"
            );
        }
    }
}
