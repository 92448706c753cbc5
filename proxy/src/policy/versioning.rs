//! API versioning at the edge (DESIGN.md 7.3, `docs/versioning.md`): named schemes of date versions
//! (`[versioning.<name>]`) that routes opt into with `versioning = "<name>"`. [`Versioning::resolve`]
//! picks one version per request (the header, then an `Accept` parameter, then the default) and
//! refuses conflicting, unknown, retired and browned-out versions before any upstream work. Every
//! header value an answer carries (`Api-Version`, `Deprecation`, `Sunset`, `Link`) is built here,
//! once, at config load.

use std::collections::{BTreeMap, HashSet};

use http::{HeaderMap, HeaderName, HeaderValue};
use settings::Problems;

use crate::clock::{parse_rfc3339, UnixSecs};
use crate::error::ProxyError;
use crate::raw::{RawDeprecation, RawUpstream, RawVersioning};

/// The header every versioned upstream receives and every versioned answer carries, unless a scheme
/// names another.
pub(crate) const DEFAULT_HEADER: &str = "api-version";

/// The `api_version` label of requests whose version was refused before one was known (conflicting
/// sources, a value that is not a supported or retired version).
pub(crate) const INVALID_LABEL: &str = "invalid";

/// A deprecated version's lifecycle, validated (`sunset` never before `deprecation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deprecation {
    pub at: UnixSecs,
    pub sunset: Option<UnixSecs>,
    pub link: Option<String>,
    /// `[start, end)` windows during which the version answers 410, to make late clients notice.
    pub brownouts: Vec<(UnixSecs, UnixSecs)>,
}

/// One supported version of a scheme.
#[derive(Debug, Clone)]
pub struct VersionEntry {
    /// `YYYY-MM-DD`.
    pub version: String,
    pub deprecation: Option<Deprecation>,
    /// The upstream pool this version goes to instead of the route's.
    pub upstream: Option<String>,
    /// What every answer in this version carries: the version header, and for a deprecated version
    /// `Deprecation: @<unix seconds>` (RFC 9745), `Sunset: <IMF-fixdate>` (RFC 8594) and
    /// `Link: <url>; rel="deprecation"`. Built once; the response path only clones them.
    pub answer_headers: Vec<(HeaderName, HeaderValue)>,
    /// The version as the header value sent upstream.
    pub value: HeaderValue,
}

impl VersionEntry {
    /// The brownout window `now` falls in, if any.
    pub fn browned_out(&self, now: UnixSecs) -> bool {
        self.deprecation.as_ref().is_some_and(|d| {
            d.brownouts
                .iter()
                .any(|&(start, end)| start <= now && now < end)
        })
    }
}

/// A validated `[versioning.<name>]` scheme.
#[derive(Debug, Clone)]
pub struct Versioning {
    pub name: String,
    /// The request and answer header (lower-case; `api-version` unless configured).
    pub header: HeaderName,
    /// Supported versions, oldest first.
    pub versions: Vec<VersionEntry>,
    /// Index of the default version in `versions`.
    pub default: usize,
    /// Versions that answer 410, oldest first.
    pub retired: Vec<String>,
    /// What a 400 for an unknown version lists: the supported versions, oldest first.
    pub supported: Vec<String>,
    /// `Vary` of every proxied answer: the representation depends on the header and on `Accept`.
    pub vary: HeaderValue,
}

impl Versioning {
    /// The version of a request with these headers at `now` (index into `versions`), or the refusal,
    /// with the metric label index of the refused version ([`Versioning::label_index`]).
    pub fn resolve(&self, headers: &HeaderMap, now: UnixSecs) -> Result<usize, VersionRefusal> {
        let mut asked: Option<&str> = None;
        let mut conflict = false;
        let mut note = |v| match asked {
            None => asked = Some(v),
            Some(a) if a == v => {}
            Some(_) => conflict = true,
        };
        for value in headers.get_all(&self.header) {
            let Ok(text) = value.to_str() else {
                return Err(VersionRefusal::unknown(self));
            };
            text.split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .for_each(&mut note);
        }
        for value in headers.get_all(http::header::ACCEPT) {
            // A non-text Accept carries no version parameter we could read; the upstream judges it.
            value
                .to_str()
                .into_iter()
                .flat_map(accept_versions)
                .for_each(&mut note);
        }
        if conflict {
            return Err(VersionRefusal {
                error: ProxyError::ConflictingApiVersion,
                label: None,
                version: None,
            });
        }
        let Some(asked) = asked else {
            return self.usable(self.default, now);
        };
        if let Some(i) = self.versions.iter().position(|e| e.version == asked) {
            return self.usable(i, now);
        }
        if let Some(r) = self.retired.iter().position(|r| r == asked) {
            return Err(VersionRefusal {
                error: ProxyError::ApiVersionRetired { link: None },
                label: Some(self.versions.len() + r),
                version: None,
            });
        }
        Err(VersionRefusal::unknown(self))
    }

    fn usable(&self, i: usize, now: UnixSecs) -> Result<usize, VersionRefusal> {
        let entry = &self.versions[i];
        if entry.browned_out(now) {
            let link = entry.deprecation.as_ref().and_then(|d| d.link.clone());
            return Err(VersionRefusal {
                error: ProxyError::ApiVersionRetired { link },
                label: Some(i),
                version: Some(i),
            });
        }
        Ok(i)
    }

    /// The `api_version` label values, in label-index order: the supported versions, the retired
    /// ones, then [`INVALID_LABEL`].
    pub fn labels(&self) -> Vec<&str> {
        self.versions
            .iter()
            .map(|e| e.version.as_str())
            .chain(self.retired.iter().map(String::as_str))
            .chain([INVALID_LABEL])
            .collect()
    }

    /// The label index of [`INVALID_LABEL`].
    pub fn invalid_label(&self) -> usize {
        self.versions.len() + self.retired.len()
    }
}

/// A refused version: the error to answer, the label index it is counted under (`None`: invalid),
/// and the version whose answer headers the refusal still carries (a brownout's `Deprecation`,
/// `Sunset` and `Link`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRefusal {
    pub error: ProxyError,
    pub label: Option<usize>,
    pub version: Option<usize>,
}

impl VersionRefusal {
    fn unknown(v: &Versioning) -> Self {
        Self {
            error: ProxyError::UnsupportedApiVersion {
                supported: v.supported.clone(),
            },
            label: None,
            version: None,
        }
    }
}

/// The `version` parameters of an `Accept` value (`application/json; version=2026-12-01`), quoted
/// or not, parameter names compared case-insensitively.
fn accept_versions(accept: &str) -> impl Iterator<Item = &str> {
    accept.split(',').flat_map(|range| {
        range.split(';').skip(1).filter_map(|param| {
            let (name, value) = param.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("version")
                .then(|| value.trim().trim_matches('"'))
                .filter(|v| !v.is_empty())
        })
    })
}

/// True for `YYYY-MM-DD` naming a real calendar day.
fn is_date_version(v: &str) -> bool {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    v.len() == 10 && time::Date::parse(v, fmt).is_ok()
}

/// `Sunset`'s IMF-fixdate (RFC 9110 5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(t: UnixSecs) -> String {
    let secs = u64::try_from(t.get()).unwrap_or(0);
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// Validates every `[versioning.<name>]` scheme, pushing every problem.
pub(crate) fn schemes_from_raw(
    raw: &BTreeMap<String, RawVersioning>,
    upstreams: &BTreeMap<String, RawUpstream>,
    p: &mut Problems,
) -> BTreeMap<String, Versioning> {
    raw.iter()
        .filter_map(|(name, r)| {
            Versioning::from_raw(name, r, upstreams, p).map(|v| (name.clone(), v))
        })
        .collect()
}

impl Versioning {
    fn from_raw(
        name: &str,
        r: &RawVersioning,
        upstreams: &BTreeMap<String, RawUpstream>,
        p: &mut Problems,
    ) -> Option<Self> {
        let key = format!("versioning.{name}");
        let header = scheme_header(&key, &r.header, p);
        check_version_lists(&key, r, upstreams, p);
        let header = header?;
        let mut supported = r.supported.clone();
        supported.sort();
        let mut retired = r.retired.clone();
        retired.sort();
        let versions = supported
            .iter()
            .map(|v| {
                let deprecation = r.deprecated.get(v).and_then(|d| {
                    Deprecation::from_raw(&format!("{key}.deprecated.\"{v}\""), d, p)
                });
                entry(&header, v, deprecation, r.upstreams.get(v).cloned())
            })
            .collect::<Option<Vec<_>>>()?;
        let default = supported.iter().position(|v| *v == r.default)?;
        let vary = HeaderValue::from_str(&format!("{}, accept", header.as_str())).ok()?;
        Some(Self {
            vary,
            name: name.to_owned(),
            header,
            versions,
            default,
            retired,
            supported,
        })
    }
}

/// The scheme's version header: a header name the proxy neither strips nor needs for itself.
fn scheme_header(key: &str, raw: &str, p: &mut Problems) -> Option<HeaderName> {
    match HeaderName::try_from(raw) {
        Ok(h) if crate::policy::inbound::is_stripped(h.as_str()) => {
            p.push(format!(
                "{key}.header: `{raw}` is an identity header the proxy strips"
            ));
            None
        }
        Ok(h) if ["host", "authorization", "accept", "connection"].contains(&h.as_str()) => {
            p.push(format!("{key}.header: `{raw}` cannot carry a version"));
            None
        }
        Ok(h) => Some(h),
        Err(_) => {
            p.push(format!("{key}.header: `{raw}` is not a header name"));
            None
        }
    }
}

/// The version lists agree: date versions, each listed once, a current default, deprecations and
/// per-version upstreams only for supported versions, and upstreams that exist.
fn check_version_lists(
    key: &str,
    r: &RawVersioning,
    upstreams: &BTreeMap<String, RawUpstream>,
    p: &mut Problems,
) {
    let mut seen = HashSet::new();
    for v in r.supported.iter().chain(&r.retired) {
        if !is_date_version(v) {
            p.push(format!("{key}: `{v}` is not a date version (YYYY-MM-DD)"));
        }
        if !seen.insert(v.as_str()) {
            p.push(format!(
                "{key}: `{v}` is listed twice (supported and retired are disjoint)"
            ));
        }
    }
    if r.supported.is_empty() {
        p.push(format!("{key}.supported: list at least one version"));
    }
    if !r.supported.contains(&r.default) {
        p.push(format!(
            "{key}.default: `{}` is not in `supported`",
            r.default
        ));
    }
    if r.deprecated.contains_key(&r.default) {
        p.push(format!(
            "{key}.default: `{}` is deprecated; the default must be a current version",
            r.default
        ));
    }
    for v in r.deprecated.keys() {
        if !r.supported.contains(v) {
            p.push(format!(
                "{key}.deprecated.\"{v}\": not in `supported` (a version past its sunset goes in `retired`)"
            ));
        }
    }
    for (v, pool) in &r.upstreams {
        if !r.supported.contains(v) {
            p.push(format!("{key}.upstreams.\"{v}\": not in `supported`"));
        }
        if !upstreams.contains_key(pool) {
            p.push(format!(
                "{key}.upstreams.\"{v}\": no upstream named `{pool}`"
            ));
        }
    }
}

fn entry(
    header: &HeaderName,
    version: &str,
    deprecation: Option<Deprecation>,
    upstream: Option<String>,
) -> Option<VersionEntry> {
    let value = HeaderValue::from_str(version).ok()?;
    let mut answer_headers = vec![(header.clone(), value.clone())];
    if let Some(d) = &deprecation {
        let deprecation = HeaderValue::from_str(&format!("@{}", d.at)).ok()?;
        answer_headers.push((HeaderName::from_static("deprecation"), deprecation));
        if let Some(sunset) = d.sunset {
            let sunset = HeaderValue::from_str(&http_date(sunset)).ok()?;
            answer_headers.push((HeaderName::from_static("sunset"), sunset));
        }
        if let Some(link) = &d.link {
            let link = HeaderValue::from_str(&format!("<{link}>; rel=\"deprecation\"")).ok()?;
            answer_headers.push((http::header::LINK, link));
        }
    }
    Some(VersionEntry {
        version: version.to_owned(),
        deprecation,
        upstream,
        answer_headers,
        value,
    })
}

impl Deprecation {
    fn from_raw(key: &str, d: &RawDeprecation, p: &mut Problems) -> Option<Self> {
        let at = p.take(parse_rfc3339(&format!("{key}.deprecation"), &d.deprecation));
        let sunset = match &d.sunset {
            Some(s) => Some(p.take(parse_rfc3339(&format!("{key}.sunset"), s))?),
            None => None,
        };
        let at = UnixSecs(at?);
        let sunset = sunset.map(UnixSecs);
        if let Some(s) = sunset {
            if s < at {
                p.push(format!(
                    "{key}.sunset: `{}` is before its deprecation `{}`",
                    d.sunset.as_deref().unwrap_or_default(),
                    d.deprecation
                ));
            }
        }
        if let Some(link) = &d.link {
            let ok = (link.starts_with("https://") || link.starts_with("http://"))
                && link
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'>' && b != b'<');
            if !ok {
                p.push(format!(
                    "{key}.link: `{link}` must be an http(s) URL without spaces or angle brackets"
                ));
            }
        }
        let mut brownouts = Vec::new();
        for (i, b) in d.brownouts.iter().enumerate() {
            let bkey = format!("{key}.brownouts[{i}]");
            let start = p.take(parse_rfc3339(&format!("{bkey}.start"), &b.start));
            let end = p.take(parse_rfc3339(&format!("{bkey}.end"), &b.end));
            let (Some(start), Some(end)) = (start, end) else {
                continue;
            };
            let (start, end) = (UnixSecs(start), UnixSecs(end));
            if end <= start {
                p.push(format!("{bkey}: `end` must be after `start`"));
            }
            if start < at || sunset.is_some_and(|s| end > s) {
                p.push(format!(
                    "{bkey}: a brownout falls between the deprecation and the sunset"
                ));
            }
            brownouts.push((start, end));
        }
        Some(Self {
            at,
            sunset,
            link: d.link.clone(),
            brownouts,
        })
    }
}

/// The compatibility matrix as Markdown: one row per route and version, with its status, dates and
/// upstream (`edge-proxy --config … versions`).
pub(crate) fn matrix<'a>(
    routes: impl IntoIterator<Item = (&'a str, &'a str, &'a Versioning)>,
) -> String {
    let date = |t: UnixSecs| {
        time::OffsetDateTime::from_unix_timestamp(t.get())
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    };
    let mut out = String::from(
        "| route | scheme | version | status | deprecation | sunset | brownouts | upstream |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for (route, upstream, v) in routes {
        for (i, e) in v.versions.iter().enumerate().rev() {
            let status = match (&e.deprecation, i == v.default) {
                (Some(_), _) => "deprecated",
                (None, true) => "current (default)",
                (None, false) => "supported",
            };
            let d = e.deprecation.as_ref();
            out.push_str(&format!(
                "| {route} | {} | {} | {status} | {} | {} | {} | {} |\n",
                v.name,
                e.version,
                d.map(|d| date(d.at)).unwrap_or_else(|| "-".into()),
                d.and_then(|d| d.sunset)
                    .map(date)
                    .unwrap_or_else(|| "-".into()),
                d.map(|d| d.brownouts.len())
                    .filter(|n| *n > 0)
                    .map_or_else(|| "-".into(), |n| n.to_string()),
                e.upstream.as_deref().unwrap_or(upstream),
            ));
        }
        for r in v.retired.iter().rev() {
            out.push_str(&format!(
                "| {route} | {} | {r} | retired (410) | - | - | - | - |\n",
                v.name
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::RawBrownout;

    const T0: i64 = 1_780_000_000;

    fn raw() -> RawVersioning {
        RawVersioning {
            header: DEFAULT_HEADER.into(),
            default: "2026-12-01".into(),
            supported: vec!["2026-12-01".into(), "2025-01-24".into()],
            retired: vec!["2024-06-01".into()],
            deprecated: BTreeMap::from([(
                "2025-01-24".into(),
                RawDeprecation {
                    deprecation: "2026-12-01T00:00:00Z".into(),
                    sunset: Some("2027-12-01T00:00:00Z".into()),
                    link: Some("https://docs.example/migrate".into()),
                    brownouts: vec![RawBrownout {
                        start: "2027-06-01T00:00:00Z".into(),
                        end: "2027-06-01T01:00:00Z".into(),
                    }],
                },
            )]),
            upstreams: BTreeMap::new(),
        }
    }

    fn scheme(r: &RawVersioning) -> Result<Versioning, Vec<String>> {
        let mut p = Problems::default();
        let up = BTreeMap::new();
        let v = Versioning::from_raw("todo", r, &up, &mut p);
        match (v, p.into_result()) {
            (Some(v), Ok(())) => Ok(v),
            (_, Err(e)) => Err(e.problems),
            (None, Ok(())) => Err(vec!["no scheme and no problem".into()]),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::try_from(*n).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn resolve<'v>(v: &'v Versioning, pairs: &[(&str, &str)]) -> Result<&'v str, ProxyError> {
        v.resolve(&headers(pairs), UnixSecs(T0))
            .map(|i| v.versions[i].version.as_str())
            .map_err(|r| r.error)
    }

    #[test]
    fn the_header_wins_then_accept_then_the_default() {
        let v = scheme(&raw()).unwrap();
        assert_eq!(resolve(&v, &[]), Ok("2026-12-01"));
        assert_eq!(
            resolve(&v, &[("Api-Version", "2025-01-24")]),
            Ok("2025-01-24")
        );
        assert_eq!(
            resolve(
                &v,
                &[("accept", "application/json; version=\"2025-01-24\"")]
            ),
            Ok("2025-01-24")
        );
        assert_eq!(
            resolve(
                &v,
                &[(
                    "accept",
                    "text/html, application/json;q=0.9;Version=2025-01-24"
                )]
            ),
            Ok("2025-01-24")
        );
        // Agreeing sources are one answer, whatever the case of the name or repetition.
        assert_eq!(
            resolve(
                &v,
                &[
                    ("API-VERSION", "2025-01-24"),
                    ("api-version", "2025-01-24, 2025-01-24"),
                    ("accept", "application/json; version=2025-01-24"),
                ]
            ),
            Ok("2025-01-24")
        );
    }

    #[test]
    fn disagreeing_sources_are_a_conflict() {
        let v = scheme(&raw()).unwrap();
        for pairs in [
            &[("api-version", "2025-01-24"), ("api-version", "2026-12-01")][..],
            &[("api-version", "2025-01-24, 2026-12-01")],
            &[
                ("api-version", "2026-12-01"),
                ("accept", "application/json; version=2025-01-24"),
            ],
            &[(
                "accept",
                "application/json; version=2025-01-24, */*; version=2026-12-01",
            )],
        ] {
            assert_eq!(
                resolve(&v, pairs),
                Err(ProxyError::ConflictingApiVersion),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn unknown_and_retired_versions_are_refused_with_their_codes() {
        let v = scheme(&raw()).unwrap();
        let unknown = ProxyError::UnsupportedApiVersion {
            supported: vec!["2025-01-24".into(), "2026-12-01".into()],
        };
        for bad in ["2026-12-02", "latest", "2026-13-01", "", " 2026-12-01x"] {
            let got = resolve(&v, &[("api-version", bad)]);
            if bad.is_empty() {
                assert_eq!(got, Ok("2026-12-01"), "an empty value names nothing");
            } else {
                assert_eq!(got, Err(unknown.clone()), "{bad}");
            }
        }
        let r = v
            .resolve(&headers(&[("api-version", "2024-06-01")]), UnixSecs(T0))
            .unwrap_err();
        assert_eq!(r.error, ProxyError::ApiVersionRetired { link: None });
        assert_eq!(v.labels()[r.label.unwrap()], "2024-06-01");
        let r = v
            .resolve(&headers(&[("api-version", "nope")]), UnixSecs(T0))
            .unwrap_err();
        assert_eq!(r.label, None);
    }

    #[test]
    fn a_brownout_answers_410_inside_its_window_only() {
        let v = scheme(&raw()).unwrap();
        let start = parse_rfc3339("t", "2027-06-01T00:00:00Z").unwrap();
        let h = headers(&[("api-version", "2025-01-24")]);
        let at = |t: i64| v.resolve(&h, UnixSecs(t));
        assert_eq!(at(start - 1), Ok(0));
        let refused = at(start).unwrap_err();
        assert_eq!(
            refused.error,
            ProxyError::ApiVersionRetired {
                link: Some("https://docs.example/migrate".into())
            }
        );
        assert_eq!(
            refused.version,
            Some(0),
            "the 410 carries the deprecation headers"
        );
        assert!(at(start + 3599).is_err());
        assert_eq!(at(start + 3600), Ok(0));
        // The current version is never browned out.
        assert_eq!(
            v.resolve(&headers(&[("api-version", "2026-12-01")]), UnixSecs(start)),
            Ok(1)
        );
    }

    #[test]
    fn deprecation_headers_have_the_rfc_formats() {
        let v = scheme(&raw()).unwrap();
        let old = &v.versions[0];
        let get = |n: &str| {
            old.answer_headers
                .iter()
                .find(|(name, _)| name == n)
                .map(|(_, v)| v.to_str().unwrap().to_owned())
        };
        assert_eq!(get("api-version").as_deref(), Some("2025-01-24"));
        // RFC 9745: `@` and the unix seconds of 2026-12-01T00:00:00Z.
        assert_eq!(get("deprecation").as_deref(), Some("@1796083200"));
        // RFC 8594 / RFC 9110 IMF-fixdate.
        assert_eq!(
            get("sunset").as_deref(),
            Some("Wed, 01 Dec 2027 00:00:00 GMT")
        );
        assert_eq!(
            get("link").as_deref(),
            Some("<https://docs.example/migrate>; rel=\"deprecation\"")
        );
        let current = &v.versions[1];
        assert_eq!(current.answer_headers.len(), 1, "only Api-Version");
    }

    #[test]
    fn config_mistakes_are_refused_at_load() {
        type Change = Box<dyn Fn(&mut RawVersioning)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "before its deprecation",
                Box::new(|r| {
                    r.deprecated.get_mut("2025-01-24").unwrap().sunset =
                        Some("2026-11-30T23:59:59Z".into());
                }),
            ),
            (
                "not a date version",
                Box::new(|r| r.supported.push("v3".into())),
            ),
            (
                "listed twice",
                Box::new(|r| r.retired.push("2025-01-24".into())),
            ),
            (
                "not in `supported`",
                Box::new(|r| r.default = "2027-01-01".into()),
            ),
            (
                "must be a current version",
                Box::new(|r| r.default = "2025-01-24".into()),
            ),
            (
                "identity header",
                Box::new(|r| r.header = "x-user-version".into()),
            ),
            ("cannot carry", Box::new(|r| r.header = "accept".into())),
            (
                "brownout falls between",
                Box::new(|r| {
                    r.deprecated.get_mut("2025-01-24").unwrap().brownouts[0].end =
                        "2028-01-01T00:00:00Z".into();
                }),
            ),
            (
                "must be an http(s) URL",
                Box::new(|r| {
                    r.deprecated.get_mut("2025-01-24").unwrap().link = Some("javascript:x".into());
                }),
            ),
            (
                "no upstream named",
                Box::new(|r| {
                    r.upstreams.insert("2025-01-24".into(), "legacy".into());
                }),
            ),
        ];
        for (want, change) in cases {
            let mut r = raw();
            change(&mut r);
            let problems = scheme(&r).unwrap_err();
            assert!(
                problems.iter().any(|p| p.contains(want)),
                "{want}: {problems:?}"
            );
        }
    }

    #[test]
    fn the_matrix_lists_every_route_and_version() {
        let v = scheme(&raw()).unwrap();
        let m = matrix([("todos", "todo", &v)]);
        let rows: Vec<&str> = m.lines().skip(2).collect();
        assert_eq!(
            rows,
            [
                "| todos | todo | 2026-12-01 | current (default) | - | - | - | todo |",
                "| todos | todo | 2025-01-24 | deprecated | 2026-12-01T00:00:00Z | 2027-12-01T00:00:00Z | 1 | todo |",
                "| todos | todo | 2024-06-01 | retired (410) | - | - | - | - |",
            ]
        );
    }
}
