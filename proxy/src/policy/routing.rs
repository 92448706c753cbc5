//! The route table: path prefix → upstream pool and policy. Default deny: a path that matches no route
//! is answered 404 at the edge. Longest prefix wins, matched on path-segment boundaries (`/me` matches
//! `/me` and `/me/x`, never `/metrics`); an `exact` route matches its path only, and wins over a
//! prefix route of the same path. Paths under `/internal/` never match, whatever the config says.
//!
//! Paths are checked before matching: dot segments, empty segments, backslashes and encoded `/`, `\`
//! or `.` are refused (`invalid_path`), because an upstream that normalises differently from this
//! matcher could otherwise be reached on a route the config never allowed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use http::Method;
use settings::Problems;

use crate::policy::caching::RouteCache;
use crate::policy::cors::CorsPolicy;
use crate::policy::versioning::Versioning;
use crate::raw::{RawConfig, RawCors, RawRoute, RawUpstream, RawVersioning};

/// Paths under this prefix are the upstreams' internal API and never forwarded from the public side.
pub(crate) const INTERNAL_PREFIX: &str = "/internal";

/// Methods a route allows when its `methods` key is absent.
pub(crate) const DEFAULT_METHODS: &[Method] = &[
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// A valid token is needed; none → 401.
    Required,
    /// A token is verified when present; requests without one pass anonymously.
    Optional,
    /// Tokens are ignored (identity headers are still stripped).
    None,
}

/// A validated route. `P` is what it is bound to: nothing in the config (`()`), its pool and metric
/// handles once the proxy is built ([`Route::bind`]), so the request path holds one `Arc<Route<…>>`
/// and never looks anything up by index or label.
#[derive(Debug, Clone)]
pub struct Route<P = ()> {
    pub name: String,
    pub prefix: String,
    /// Matches `prefix` only.
    pub exact: bool,
    /// The upstream's configured name (the assertion audience and a metric label).
    pub upstream: String,
    pub target: P,
    pub auth: AuthMode,
    pub methods: Vec<Method>,
    /// `Allow` header value for 405 answers.
    pub allow: String,
    pub max_body_bytes: u64,
    pub cors: Option<Arc<CorsPolicy>>,
    /// The API versioning scheme the route opted into.
    pub versioning: Option<Arc<Versioning>>,
    /// The edge cache of this route.
    pub cache: Option<RouteCache>,
    /// WebSocket handshakes are forwarded (`policy::websocket`).
    pub websocket: bool,
}

impl Route {
    /// The same route, bound to `target`.
    pub fn bind<Q>(self, target: Q) -> Route<Q> {
        Route {
            name: self.name,
            prefix: self.prefix,
            exact: self.exact,
            upstream: self.upstream,
            target,
            auth: self.auth,
            methods: self.methods,
            allow: self.allow,
            max_body_bytes: self.max_body_bytes,
            cors: self.cors,
            versioning: self.versioning,
            cache: self.cache,
            websocket: self.websocket,
        }
    }
}

/// What a route falls back to, and what it may refer to.
struct RouteDefaults<'a> {
    pub upstreams: &'a BTreeMap<String, RawUpstream>,
    pub cors: &'a HashMap<String, Arc<CorsPolicy>>,
    pub cors_defined: &'a BTreeMap<String, RawCors>,
    pub versioning: &'a BTreeMap<String, Arc<Versioning>>,
    pub versioning_defined: &'a BTreeMap<String, RawVersioning>,
    pub max_body_bytes: u64,
}

/// Validates `[[routes]]` and the `[cors.*]` policies and `[versioning.*]` schemes they use,
/// pushing every problem (names, prefixes, upstreams, methods, CORS, versions).
pub(crate) fn routes_from_raw(raw: &RawConfig, p: &mut Problems) -> Vec<Route> {
    let cors = crate::policy::cors::policies_from_raw(&raw.cors, p);
    let versioning =
        crate::policy::versioning::schemes_from_raw(&raw.versioning, &raw.upstreams, p)
            .into_iter()
            .map(|(name, v)| (name, Arc::new(v)))
            .collect();
    let d = RouteDefaults {
        upstreams: &raw.upstreams,
        cors: &cors,
        cors_defined: &raw.cors,
        versioning: &versioning,
        versioning_defined: &raw.versioning,
        max_body_bytes: raw.limits.max_body_bytes,
    };
    let d = &d;
    let raw = &raw.routes;
    let mut names = HashSet::new();
    let mut prefixes = HashSet::new();
    let mut routes = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let key = format!("routes[{i}] ({})", r.name);
        if !names.insert(r.name.clone()) {
            p.push(format!("{key}.name: duplicate route name"));
        }
        if !prefixes.insert((r.prefix.clone(), r.exact)) {
            p.push(format!("{key}.prefix: duplicate prefix `{}`", r.prefix));
        }
        routes.extend(Route::from_raw(&key, r, d, p));
    }
    resolve_caches(&mut routes, raw, p);
    routes
}

impl Route {
    /// Validates one route; `key` names it in problems.
    fn from_raw(key: &str, r: &RawRoute, d: &RouteDefaults<'_>, p: &mut Problems) -> Option<Self> {
        check_fields(key, r, d, p);
        let methods: Vec<Method> = match &r.methods {
            None => DEFAULT_METHODS.to_vec(),
            Some(list) => list
                .iter()
                .filter_map(|m| p.take(parse_method(m).map_err(|e| format!("{key}.methods: {e}"))))
                .collect(),
        };
        let cors = route_cors(key, r.cors.as_deref(), d, p);
        let versioning = route_versioning(key, r.versioning.as_deref(), d, p);
        let auth = p.take(AuthMode::parse(&r.auth).map_err(|e| format!("{key}.auth: {e}")))?;
        let cache = r
            .cache
            .as_ref()
            .and_then(|c| RouteCache::from_raw(key, c, auth == AuthMode::None, p));
        check_cache(key, r, cache.as_ref(), &methods, p);
        Some(Self {
            name: r.name.clone(),
            prefix: r.prefix.clone(),
            exact: r.exact,
            upstream: r.upstream.clone(),
            target: (),
            auth,
            allow: allow_header(&methods),
            methods,
            max_body_bytes: r.max_body_bytes.unwrap_or(d.max_body_bytes),
            cors,
            versioning,
            cache,
            websocket: r.websocket,
        })
    }
}

/// A route's own fields: a label-safe name, a prefix, a known upstream, a body limit above 0.
fn check_fields(key: &str, r: &RawRoute, d: &RouteDefaults<'_>, p: &mut Problems) {
    let label_chars = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if r.name.is_empty() || !r.name.chars().all(label_chars) {
        p.push(format!(
            "{key}.name: use letters, digits, `-` and `_` (it is a metric label)"
        ));
    }
    if !valid_prefix(&r.prefix) {
        p.push(format!(
            "{key}.prefix: `{}` must start with / and not end with / (except `/` itself)",
            r.prefix
        ));
    }
    if !d.upstreams.contains_key(&r.upstream) {
        p.push(format!(
            "{key}.upstream: no upstream named `{}`",
            r.upstream
        ));
    }
    if r.max_body_bytes == Some(0) {
        p.push(format!("{key}.max_body_bytes: must be greater than 0"));
    }
}

/// The versioning scheme a route names (a scheme that is defined but invalid was reported already).
fn route_versioning(
    key: &str,
    name: Option<&str>,
    d: &RouteDefaults<'_>,
    p: &mut Problems,
) -> Option<Arc<Versioning>> {
    let name = name?;
    let scheme = d.versioning.get(name).cloned();
    if scheme.is_none() && !d.versioning_defined.contains_key(name) {
        p.push(format!(
            "{key}.versioning: no versioning scheme named `{name}` (define [versioning.{name}])"
        ));
    }
    scheme
}

/// A cache that stores needs a route that answers GET or HEAD, and no WebSocket upgrades.
fn check_cache(
    key: &str,
    r: &RawRoute,
    cache: Option<&RouteCache>,
    methods: &[Method],
    p: &mut Problems,
) {
    if cache.is_some_and(RouteCache::stores)
        && !methods
            .iter()
            .any(|m| *m == Method::GET || *m == Method::HEAD)
    {
        p.push(format!(
            "{key}.cache.ttl_seconds: the route allows neither GET nor HEAD, so nothing is stored"
        ));
    }
    if r.websocket && cache.is_some_and(RouteCache::stores) {
        p.push(format!(
            "{key}.websocket: a WebSocket route cannot store answers in the edge cache"
        ));
    }
}

/// Resolves every cached route's `invalidates` once all routes are known.
fn resolve_caches(routes: &mut [Route], raw: &[RawRoute], p: &mut Problems) {
    let mut caches: BTreeMap<String, (RouteCache, Vec<String>)> = routes
        .iter()
        .filter_map(|r| {
            let named = raw.iter().find(|x| x.name == r.name)?.cache.as_ref()?;
            Some((
                r.name.clone(),
                (r.cache.clone()?, named.invalidates.clone()),
            ))
        })
        .collect();
    crate::policy::caching::resolve_invalidations(&mut caches, p);
    for r in routes.iter_mut() {
        if let Some((resolved, _)) = caches.remove(&r.name) {
            r.cache = Some(resolved);
        }
    }
}

impl AuthMode {
    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "required" => Ok(Self::Required),
            "optional" => Ok(Self::Optional),
            "none" => Ok(Self::None),
            other => Err(format!("`{other}` is not one of required, optional, none")),
        }
    }
}

/// The route's CORS policy, by name.
fn route_cors(
    key: &str,
    name: Option<&str>,
    d: &RouteDefaults<'_>,
    p: &mut Problems,
) -> Option<Arc<CorsPolicy>> {
    let name = name?;
    let policy = d.cors.get(name).cloned();
    // A policy that is defined but invalid was reported already.
    if policy.is_none() && !d.cors_defined.contains_key(name) {
        p.push(format!(
            "{key}.cors: no CORS policy named `{name}` (define [cors.{name}])"
        ));
    }
    policy
}

/// The `Allow` value for a route's methods.
fn allow_header(methods: &[Method]) -> String {
    methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn valid_prefix(prefix: &str) -> bool {
    prefix == "/"
        || (prefix.starts_with('/')
            && !prefix.ends_with('/')
            && !prefix.contains("//")
            && prefix
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#'))
}

fn parse_method(m: &str) -> Result<Method, String> {
    let upper = m.to_ascii_uppercase();
    match upper.as_str() {
        "TRACE" | "CONNECT" => Err(format!("`{m}` is never allowed (R-HTTP-6)")),
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => {
            Method::from_bytes(upper.as_bytes()).map_err(|_| format!("`{m}` is not a method"))
        }
        _ => Err(format!(
            "`{m}` is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
        )),
    }
}

#[derive(Debug)]
pub(crate) struct RouteTable<P> {
    /// Sorted by prefix length, longest first.
    routes: Vec<Arc<Route<P>>>,
}

/// Why a path was refused before matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidPath;

impl<P> RouteTable<P> {
    /// Builds the table from bound routes.
    pub(crate) fn new(routes: impl IntoIterator<Item = Route<P>>) -> Self {
        let mut routes: Vec<Arc<Route<P>>> = routes.into_iter().map(Arc::new).collect();
        routes.sort_by_key(|r| (std::cmp::Reverse(r.prefix.len()), !r.exact));
        Self { routes }
    }

    /// The route for `path`, or `None` (404). `path` must have passed [`check_path`].
    pub(crate) fn route(&self, path: &str) -> Option<&Arc<Route<P>>> {
        if segment_prefix(INTERNAL_PREFIX, path) {
            return None;
        }
        self.routes.iter().find(|r| {
            if r.exact {
                r.prefix == path
            } else {
                segment_prefix(&r.prefix, path)
            }
        })
    }
}

/// `prefix` matches `path` on a segment boundary.
pub(crate) fn segment_prefix(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return path.starts_with('/');
    }
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Refuses paths an upstream might read differently from the route matcher: not starting with `/`,
/// a backslash, an empty segment, a `.` or `..` segment, an encoded `/`, `\`, `.` or NUL, a
/// control character, a space or `#`. One pass over the bytes, no allocation.
pub(crate) fn check_path(path: &str) -> Result<(), InvalidPath> {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return Err(InvalidPath);
    }
    let mut segment_start = 0;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'\\' | b' ' | b'#' => return Err(InvalidPath),
            c if c.is_ascii_control() => return Err(InvalidPath),
            b'%' => {
                let hex = (b.get(i + 1).copied(), b.get(i + 2).copied());
                let encoded = match hex {
                    (Some(h), Some(l)) => matches!(
                        (h, l.to_ascii_lowercase()),
                        (b'2', b'f' | b'e') | (b'5', b'c') | (b'0', b'0')
                    ),
                    _ => false,
                };
                if encoded {
                    return Err(InvalidPath);
                }
            }
            b'/' => {
                if i > 0 && dot_or_empty(&b[segment_start..i]) {
                    return Err(InvalidPath);
                }
                segment_start = i + 1;
            }
            _ => {}
        }
    }
    // The last segment may be empty (`/todos/`), never a dot segment.
    let last = &b[segment_start..];
    if last == b"." || last == b".." {
        return Err(InvalidPath);
    }
    Ok(())
}

/// An empty, `.` or `..` segment (between two slashes; `segment` excludes the leading `/`).
fn dot_or_empty(segment: &[u8]) -> bool {
    matches!(segment, b"" | b"." | b"..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, prefix: &str) -> Route {
        Route {
            name: name.into(),
            prefix: prefix.into(),
            exact: name.ends_with("-exact"),
            upstream: "u".into(),
            target: (),
            auth: AuthMode::Required,
            methods: vec![Method::GET],
            allow: "GET".into(),
            max_body_bytes: 1,
            cors: None,
            versioning: None,
            cache: None,
            websocket: false,
        }
    }

    fn table() -> RouteTable<()> {
        RouteTable::new([
            route("root", "/"),
            route("me", "/me"),
            route("todos", "/todos"),
            route("todos-exact", "/todos"),
            route("todo-import", "/todos/import"),
            route("import-exact", "/import"),
            route("int", "/internal/x"),
        ])
    }

    #[test]
    fn longest_prefix_wins_on_segment_boundaries() {
        let t = table();
        let name = |p: &str| t.route(p).map(|r| r.name.as_str());
        assert_eq!(name("/me"), Some("me"));
        assert_eq!(name("/me/x"), Some("me"));
        assert_eq!(name("/metrics"), Some("root"));
        assert_eq!(name("/todos/import/1"), Some("todo-import"));
        assert_eq!(name("/todos/importer"), Some("todos"));
        assert_eq!(name("/todos/1"), Some("todos"));
    }

    #[test]
    fn an_exact_route_matches_its_path_only_and_wins_over_the_prefix_route() {
        let t = table();
        let name = |p: &str| t.route(p).map(|r| r.name.as_str());
        assert_eq!(name("/todos"), Some("todos-exact"));
        assert_eq!(name("/todos/x"), Some("todos"));
        assert_eq!(name("/import"), Some("import-exact"));
        assert_eq!(
            name("/import/x"),
            Some("root"),
            "nothing below an exact route"
        );
    }

    #[test]
    fn internal_paths_never_match_even_when_configured() {
        let t = table();
        assert!(t.route("/internal").is_none());
        assert!(t.route("/internal/x").is_none());
        assert!(t.route("/internal/credentials/verify").is_none());
        assert_eq!(t.route("/internals").map(|r| r.name.as_str()), Some("root"));
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for p in [
            "/todos/../internal/x",
            "/./internal",
            "//internal/x",
            "/todos%2F..%2Finternal",
            "/a\\b",
            "/%2e%2e/x",
            "todos",
            "/a/..",
            "/a%00",
            "/a/%2E",
            "/a%5C",
            "/a/.",
            "/a//b",
            "/a/./b",
            "/a b",
            "/a#b",
            "/a\u{7f}",
        ] {
            assert_eq!(check_path(p), Err(InvalidPath), "{p}");
        }
        for p in [
            "/",
            "/todos",
            "/todos/",
            "/todos/1",
            "/a.b/c..d",
            "/x%20y",
            "/.well-known/jwks.json",
            "/ü",
            "/%",
        ] {
            assert_eq!(check_path(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn without_a_root_route_unknown_paths_are_denied() {
        let t = RouteTable::new([route("todos", "/todos")]);
        assert!(t.route("/").is_none());
        assert!(t.route("/metrics").is_none());
        assert!(t.route("/admin/x").is_none());
    }
}
