//! The route table: path prefix → upstream pool and policy. Default deny: a path that matches no route
//! is answered 404 at the edge. Longest prefix wins, matched on path-segment boundaries (`/me` matches
//! `/me` and `/me/x`, never `/metrics`); an `exact` route matches its path only, and wins over a
//! prefix route of the same path. Paths under `/internal/` never match, whatever the config says.
//!
//! Paths are checked before matching: dot segments, empty segments, backslashes and encoded `/`, `\`
//! or `.` are refused (`invalid_path`), because an upstream that normalises differently from this
//! matcher could otherwise be reached on a route the config never allowed.

use http::Method;

use crate::config::{AuthMode, RouteConfig};

/// Paths under this prefix are the upstreams' internal API and never forwarded from the public side.
pub const INTERNAL_PREFIX: &str = "/internal";

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub prefix: String,
    /// Matches `prefix` only.
    pub exact: bool,
    /// Index of the route's pool in `Gateway::pools`.
    pub upstream: usize,
    pub upstream_name: String,
    pub auth: AuthMode,
    pub methods: Vec<Method>,
    /// `Allow` header value for 405 answers.
    pub allow: String,
    pub max_body_bytes: u64,
    pub cors: Option<std::sync::Arc<crate::cors::CorsPolicy>>,
}

#[derive(Debug, Default)]
pub struct RouteTable {
    /// Sorted by prefix length, longest first.
    routes: Vec<Route>,
}

/// Why a path was refused before matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidPath;

impl RouteTable {
    /// Builds the table; `pool_index` maps an upstream name to its pool.
    pub fn from_config(routes: &[RouteConfig], pool_index: impl Fn(&str) -> Option<usize>) -> Self {
        let mut routes: Vec<Route> = routes
            .iter()
            .filter_map(|r| {
                Some(Route {
                    name: r.name.clone(),
                    prefix: r.prefix.clone(),
                    exact: r.exact,
                    upstream: pool_index(&r.upstream)?,
                    upstream_name: r.upstream.clone(),
                    auth: r.auth,
                    methods: r.methods.clone(),
                    allow: r
                        .methods
                        .iter()
                        .map(Method::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                    max_body_bytes: r.max_body_bytes,
                    cors: r.cors.clone(),
                })
            })
            .collect();
        routes.sort_by_key(|r| (std::cmp::Reverse(r.prefix.len()), !r.exact));
        Self { routes }
    }

    /// The index (into [`Self::routes`]) of the route for `path`, or `None` (404). `path` must have
    /// passed [`check_path`].
    pub fn route_index(&self, path: &str) -> Option<usize> {
        if segment_prefix(INTERNAL_PREFIX, path) {
            return None;
        }
        self.routes.iter().position(|r| {
            if r.exact {
                r.prefix == path
            } else {
                segment_prefix(&r.prefix, path)
            }
        })
    }

    /// The route for `path`, or `None` (404).
    pub fn route(&self, path: &str) -> Option<&Route> {
        self.route_index(path).map(|i| &self.routes[i])
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

/// `prefix` matches `path` on a segment boundary.
pub fn segment_prefix(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return path.starts_with('/');
    }
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Refuses paths an upstream might read differently from the route matcher.
pub fn check_path(path: &str) -> Result<(), InvalidPath> {
    if !path.starts_with('/') || path.contains('\\') || path.contains("//") {
        return Err(InvalidPath);
    }
    let lower = path.to_ascii_lowercase();
    if ["%2f", "%5c", "%2e", "%00"]
        .iter()
        .any(|enc| lower.contains(enc))
    {
        return Err(InvalidPath);
    }
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(InvalidPath);
    }
    if path
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'#')
    {
        return Err(InvalidPath);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let r = |name: &str, prefix: &str| RouteConfig {
            name: name.into(),
            prefix: prefix.into(),
            exact: name.ends_with("-exact"),
            upstream: "u".into(),
            auth: AuthMode::Required,
            methods: vec![Method::GET],
            max_body_bytes: 1,
            cors: None,
        };
        RouteTable::from_config(
            &[
                r("root", "/"),
                r("me", "/me"),
                r("todos", "/todos"),
                r("todos-exact", "/todos"),
                r("todo-import", "/todos/import"),
                r("import-exact", "/import"),
                r("int", "/internal/x"),
            ],
            |_| Some(0),
        )
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
        ] {
            assert_eq!(check_path(p), Err(InvalidPath), "{p}");
        }
        for p in ["/", "/todos", "/todos/1", "/a.b/c..d", "/x%20y"] {
            assert_eq!(check_path(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn without_a_root_route_unknown_paths_are_denied() {
        let t = RouteTable::from_config(
            &[RouteConfig {
                name: "todos".into(),
                prefix: "/todos".into(),
                exact: false,
                upstream: "u".into(),
                auth: AuthMode::Required,
                methods: vec![],
                max_body_bytes: 1,
                cors: None,
            }],
            |_| Some(0),
        );
        assert!(t.route("/").is_none());
        assert!(t.route("/metrics").is_none());
        assert!(t.route("/admin/x").is_none());
    }
}
