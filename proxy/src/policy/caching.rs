//! The edge cache's policy (DESIGN.md 7.2), without pingora: a route's `[routes.cache]`, who may
//! share an entry (the key), what may be stored, which scopes a write invalidates, and the
//! `Cache-Status` (RFC 9211) each outcome answers with. `gateway::caching` applies it on
//! pingora-cache; `generations` holds the scopes' generations.
//!
//! The rules that keep the cache from ever serving stale or foreign data:
//! - authentication runs before the cache, so a revoked token never reaches a cached answer;
//! - in `per_user` mode the key holds the verified subject, length-prefixed with every other part
//!   (pingora's `user_tag` is not part of its hash, so it is not used for identity);
//! - the key holds the scope's generation; a 2xx answer to a user's unsafe request gives that user's
//!   scopes (this route's and those it `invalidates`) new generations before the request is
//!   forwarded and again before the answer is sent, so the next read misses on every replica;
//! - only `200` answers without `Set-Cookie` or `no-store` are stored, and `private` ones only in
//!   `per_user` mode.

use std::collections::BTreeMap;
use std::time::Duration;

use http::HeaderMap;
use settings::Problems;

use crate::generations::GENERATION_TTL;
use crate::raw::RawRouteCache;

/// Longest `ttl_seconds + stale_while_revalidate_seconds`: an entry must age out well before an
/// untouched scope's generation does.
pub(crate) const MAX_ENTRY_LIFE: Duration = Duration::from_secs(3600);
const _: () = assert!(MAX_ENTRY_LIFE.as_secs() < GENERATION_TTL.as_secs());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// One entry per verified subject.
    PerUser,
    /// One entry for every caller (answers marked `private` are never stored).
    Shared,
}

/// A validated `[routes.cache]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCache {
    pub mode: CacheMode,
    /// How long a stored answer is fresh; `None`: this route's answers are not stored (its writes
    /// still invalidate).
    pub ttl: Option<Duration>,
    /// How long past `ttl` a stale answer is served while one request revalidates it.
    pub stale_while_revalidate: Duration,
    /// Routes whose entries a 2xx unsafe request on this route invalidates (this one included when
    /// it stores), with their modes; resolved once every route is known.
    pub invalidates: Vec<(String, CacheMode)>,
}

impl RouteCache {
    /// Validates one route's section; `invalidates` is resolved later by [`resolve_invalidations`].
    pub(crate) fn from_raw(
        key: &str,
        r: &RawRouteCache,
        auth_none: bool,
        p: &mut Problems,
    ) -> Option<Self> {
        let mode = match r.mode.as_str() {
            "per_user" => CacheMode::PerUser,
            "shared" => CacheMode::Shared,
            other => {
                p.push(format!(
                    "{key}.cache.mode: `{other}` is not one of per_user, shared"
                ));
                return None;
            }
        };
        if mode == CacheMode::PerUser && auth_none {
            p.push(format!(
                "{key}.cache.mode: per_user needs a verified subject; this route has auth = \"none\""
            ));
        }
        let ttl = r.ttl_seconds.map(Duration::from_secs);
        let swr = Duration::from_secs(r.stale_while_revalidate_seconds);
        if ttl.is_none() && r.stale_while_revalidate_seconds > 0 {
            p.push(format!(
                "{key}.cache.stale_while_revalidate_seconds: needs ttl_seconds (nothing is stored without it)"
            ));
        }
        if ttl.unwrap_or_default() + swr > MAX_ENTRY_LIFE {
            p.push(format!(
                "{key}.cache: ttl_seconds + stale_while_revalidate_seconds must be at most {}",
                MAX_ENTRY_LIFE.as_secs()
            ));
        }
        Some(Self {
            mode,
            ttl,
            stale_while_revalidate: swr,
            invalidates: Vec::new(),
        })
    }

    /// Whether answers of this route are stored at all.
    pub fn stores(&self) -> bool {
        self.ttl.is_some()
    }
}

/// Resolves every route's `invalidates` (names in the raw config) into (route, mode) pairs: the
/// route itself when it stores, then each named route, which must exist and store.
pub(crate) fn resolve_invalidations(
    caches: &mut BTreeMap<String, (RouteCache, Vec<String>)>,
    p: &mut Problems,
) {
    let modes: BTreeMap<String, Option<CacheMode>> = caches
        .iter()
        .map(|(name, (c, _))| (name.clone(), c.stores().then_some(c.mode)))
        .collect();
    for (name, (cache, named)) in caches.iter_mut() {
        let mut out = Vec::new();
        if cache.stores() {
            out.push((name.clone(), cache.mode));
        }
        for other in named.iter() {
            match modes.get(other) {
                Some(Some(mode)) => {
                    if !out.iter().any(|(n, _)| n == other) {
                        out.push((other.clone(), *mode));
                    }
                }
                _ => p.push(format!(
                    "routes ({name}).cache.invalidates: `{other}` is not a route whose answers are cached"
                )),
            }
        }
        cache.invalidates = out;
    }
}

/// The generation scope of `route`'s entries: one per subject in `per_user` mode.
pub(crate) fn scope(route: &str, mode: CacheMode, subject: &str) -> String {
    match mode {
        CacheMode::PerUser => format!("u:{route}:{subject}"),
        CacheMode::Shared => format!("s:{route}"),
    }
}

/// The `Accept` classes an entry can be for; anything else bypasses the cache.
fn accept_is_json(headers: &HeaderMap) -> bool {
    headers.get_all(http::header::ACCEPT).iter().all(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',').all(|range| {
                let media = range.split(';').next().unwrap_or_default().trim();
                matches!(media, "" | "*/*" | "application/*" | "application/json")
            })
        })
    })
}

/// What an entry is for: everything the answer depends on, each part length-prefixed so no two
/// different requests can spell the same key.
pub(crate) struct KeyParts<'a> {
    pub route: &'a str,
    pub generation: u64,
    /// The verified subject in `per_user` mode, empty in `shared` mode.
    pub subject: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The resolved API version on a versioned route.
    pub api_version: Option<&'a str>,
}

impl KeyParts<'_> {
    /// The primary key: `len:part` for every part, the query's parameters sorted. The method is not
    /// part of it: only GET and HEAD are cached, and HEAD is answered from GET's entry.
    pub(crate) fn primary(&self) -> String {
        let mut query: Vec<&str> = self
            .query
            .unwrap_or_default()
            .split('&')
            .filter(|q| !q.is_empty())
            .collect();
        query.sort_unstable();
        let query = query.join("&");
        let generation = self.generation.to_string();
        let parts = [
            self.route,
            &generation,
            self.subject,
            self.path,
            &query,
            self.api_version.unwrap_or_default(),
            "json",
        ];
        let mut out = String::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
        for p in parts {
            out.push_str(&p.len().to_string());
            out.push(':');
            out.push_str(p);
        }
        out
    }
}

/// Why a request is not looked up in the cache (`None`: it is).
pub(crate) fn bypass_reason(
    method: &http::Method,
    headers: &HeaderMap,
    mode: CacheMode,
    has_subject: bool,
) -> Option<&'static str> {
    if method != http::Method::GET && method != http::Method::HEAD {
        return Some("method");
    }
    if mode == CacheMode::PerUser && !has_subject {
        return Some("anonymous");
    }
    if !accept_is_json(headers) {
        return Some("accept");
    }
    None
}

/// Why an answer may not be stored (`None`: it may).
pub(crate) fn unstorable(
    status: u16,
    headers: &HeaderMap,
    mode: CacheMode,
) -> Option<&'static str> {
    if status != 200 {
        return Some("status");
    }
    if headers.contains_key(http::header::SET_COOKIE) {
        return Some("set-cookie");
    }
    let directives = headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| {
            d.split('=')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    for d in directives {
        match d.as_str() {
            "no-store" => return Some("no-store"),
            "private" if mode == CacheMode::Shared => return Some("private"),
            _ => {}
        }
    }
    None
}

/// The outcome of one request on a cached route: its `Cache-Status` and its metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheOutcome {
    /// Served from a fresh entry.
    Hit,
    /// Served from a stale entry while one request revalidates it.
    StaleServed,
    /// A stale entry was revalidated upstream (`304`) and served.
    Revalidated,
    /// Fetched and stored.
    Stored,
    /// Fetched; the answer may not be stored.
    Uncacheable,
    /// Not looked up (method, anonymous, `Accept`, the generation store unavailable).
    Bypass,
}

impl CacheOutcome {
    /// The `result` label of `edge_proxy_cache_requests_total`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::StaleServed | Self::Revalidated => "stale",
            Self::Stored => "miss",
            Self::Uncacheable => "uncacheable",
            Self::Bypass => "bypass",
        }
    }

    /// The `Cache-Status` value (RFC 9211).
    pub(crate) fn header(self) -> &'static str {
        match self {
            Self::Hit => "edge-proxy; hit",
            Self::StaleServed => "edge-proxy; hit; detail=stale-while-revalidate",
            Self::Revalidated => "edge-proxy; fwd=stale; fwd-status=304",
            Self::Stored => "edge-proxy; fwd=miss; stored",
            Self::Uncacheable => "edge-proxy; fwd=miss",
            Self::Bypass => "edge-proxy; fwd=bypass",
        }
    }

    pub(crate) const ALL: [Self; 6] = [
        Self::Hit,
        Self::StaleServed,
        Self::Revalidated,
        Self::Stored,
        Self::Uncacheable,
        Self::Bypass,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    fn key(subject: &str, path: &str, query: Option<&str>) -> String {
        KeyParts {
            route: "todos",
            generation: 7,
            subject,
            path,
            query,
            api_version: Some("2026-12-01"),
        }
        .primary()
    }

    #[test]
    fn keys_hold_every_part_and_cannot_be_spelled_twice() {
        assert_eq!(
            key("alice", "/todos", Some("b=2&a=1")),
            key("alice", "/todos", Some("a=1&b=2"))
        );
        // Moving a character between parts gives another key (length prefixes).
        assert_ne!(key("alice", "/todos", None), key("alic", "e/todos", None));
        assert_ne!(key("alice", "/todos", None), key("bob", "/todos", None));
        assert_ne!(
            key("alice", "/todos", Some("a=1")),
            key("alice", "/todos", None)
        );
        let other_generation = KeyParts {
            route: "todos",
            generation: 8,
            subject: "alice",
            path: "/todos",
            query: None,
            api_version: Some("2026-12-01"),
        };
        assert_ne!(other_generation.primary(), key("alice", "/todos", None));
        assert_eq!(
            scope("todos", CacheMode::PerUser, "idp:a:b"),
            "u:todos:idp:a:b"
        );
        assert_eq!(scope("todos", CacheMode::Shared, "alice"), "s:todos");
    }

    #[test]
    fn only_plain_200s_are_stored_and_private_only_per_user() {
        let ok = headers(&[("cache-control", "private, no-cache")]);
        assert_eq!(unstorable(200, &ok, CacheMode::PerUser), None);
        assert_eq!(unstorable(200, &ok, CacheMode::Shared), Some("private"));
        for status in [201, 204, 301, 304, 401, 404, 500] {
            assert_eq!(
                unstorable(status, &HeaderMap::new(), CacheMode::PerUser),
                Some("status")
            );
        }
        let cookie = headers(&[("set-cookie", "a=b")]);
        assert_eq!(
            unstorable(200, &cookie, CacheMode::PerUser),
            Some("set-cookie")
        );
        let no_store = headers(&[
            ("cache-control", "max-age=60"),
            ("cache-control", "No-Store"),
        ]);
        assert_eq!(
            unstorable(200, &no_store, CacheMode::PerUser),
            Some("no-store")
        );
    }

    #[test]
    fn unsafe_methods_anonymous_callers_and_other_media_bypass() {
        let json = headers(&[("accept", "application/json; version=2025-01-24")]);
        assert_eq!(
            bypass_reason(&http::Method::GET, &json, CacheMode::PerUser, true),
            None
        );
        assert_eq!(
            bypass_reason(
                &http::Method::HEAD,
                &HeaderMap::new(),
                CacheMode::PerUser,
                true
            ),
            None
        );
        assert_eq!(
            bypass_reason(&http::Method::POST, &json, CacheMode::PerUser, true),
            Some("method")
        );
        assert_eq!(
            bypass_reason(&http::Method::GET, &json, CacheMode::PerUser, false),
            Some("anonymous")
        );
        assert_eq!(
            bypass_reason(&http::Method::GET, &json, CacheMode::Shared, false),
            None
        );
        let html = headers(&[("accept", "text/html")]);
        assert_eq!(
            bypass_reason(&http::Method::GET, &html, CacheMode::Shared, true),
            Some("accept")
        );
    }

    #[test]
    fn invalidations_name_cached_routes_and_include_the_route_itself() {
        let cache = |ttl: Option<u64>, mode| RouteCache {
            mode,
            ttl: ttl.map(Duration::from_secs),
            stale_while_revalidate: Duration::ZERO,
            invalidates: Vec::new(),
        };
        let mut all = BTreeMap::from([
            (
                "todos".to_owned(),
                (cache(Some(30), CacheMode::PerUser), vec!["todo".to_owned()]),
            ),
            (
                "todo".to_owned(),
                (
                    cache(Some(30), CacheMode::PerUser),
                    vec!["todos".to_owned()],
                ),
            ),
            (
                "writer".to_owned(),
                (
                    cache(None, CacheMode::PerUser),
                    vec!["todos".to_owned(), "nope".to_owned()],
                ),
            ),
        ]);
        let mut p = Problems::default();
        resolve_invalidations(&mut all, &mut p);
        let problems = p.into_result().unwrap_err().problems;
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("`nope`"), "{problems:?}");
        let names = |r: &str| {
            all[r]
                .0
                .invalidates
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("todos"), ["todos", "todo"]);
        assert_eq!(names("writer"), ["todos"]);
    }

    #[test]
    fn every_outcome_has_an_rfc_9211_status_and_a_bounded_label() {
        for o in CacheOutcome::ALL {
            assert!(o.header().starts_with("edge-proxy; "));
            assert!(["hit", "miss", "stale", "bypass", "uncacheable"].contains(&o.label()));
        }
    }
}
