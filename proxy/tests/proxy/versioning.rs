//! API versioning through the real proxy (DESIGN.md 7.3): the version is resolved at the edge (header,
//! then `Accept`, then the default), refusals never reach the upstream, the upstream gets exactly one
//! version header whatever the client sent, deprecated versions announce their end, brownouts follow
//! the injected clock, and a version can be served by its own pool.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::framing::raw;
use crate::harness::{TestProxy, TestUpstream};

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

/// A scheme with a current version, a deprecated one (with a brownout an hour from now), a retired
/// one, and routes that opt in; `extra` is appended (another scheme, pools).
fn config(header: &str, extra: &str) -> String {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    format!(
        r#"
[versioning.api]
header = "{header}"
default = "2026-12-01"
supported = ["2026-12-01", "2025-01-24"]
retired = ["2024-01-01"]

[versioning.api.deprecated."2025-01-24"]
deprecation = "{deprecation}"
sunset = "{sunset}"
link = "https://docs.example/versioning"

[[versioning.api.deprecated."2025-01-24".brownouts]]
start = "{start}"
end = "{end}"

[[routes]]
name = "v"
prefix = "/v"
upstream = "todo"
auth = "none"
versioning = "api"

[[routes]]
name = "vauth"
prefix = "/vauth"
upstream = "todo"
versioning = "api"
{extra}
"#,
        deprecation = rfc3339(now - time::Duration::days(1)),
        sunset = rfc3339(now + time::Duration::days(30)),
        start = rfc3339(now + time::Duration::hours(1)),
        end = rfc3339(now + time::Duration::hours(2)),
    )
}

async fn start(header: &str, extra: &str) -> (TestUpstream, TestProxy) {
    let up = TestUpstream::start().await;
    let p = TestProxy::start_with(up.addr, &config(header, extra), |_| None).await;
    (up, p)
}

async fn get(p: &TestProxy, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = p.client.get(p.url(path));
    for (n, v) in headers {
        r = r.header(*n, *v);
    }
    r.send().await.unwrap()
}

/// The version headers the upstream saw on its last request.
fn upstream_versions(up: &TestUpstream, name: &str) -> Vec<String> {
    let last = up.forwarded().pop().expect("a forwarded request");
    last.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn the_header_then_accept_then_the_default_choose_the_version() {
    let (up, p) = start("api-version", "").await;

    let r = get(&p, "/v/x", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "api-version"), Some("2026-12-01"));
    assert_eq!(header(&r, "deprecation"), None, "the current version");
    assert_eq!(header(&r, "vary"), Some("api-version, accept"));
    assert_eq!(upstream_versions(&up, "api-version"), ["2026-12-01"]);

    for sent in [
        ("Api-Version", "2025-01-24"),
        ("accept", "application/json; version=2025-01-24"),
        (
            "accept",
            "text/html;q=0.5, application/json; version=\"2025-01-24\"",
        ),
    ] {
        let r = get(&p, "/v/x", &[sent]).await;
        assert_eq!(r.status(), 200, "{sent:?}");
        assert_eq!(header(&r, "api-version"), Some("2025-01-24"), "{sent:?}");
        assert_eq!(upstream_versions(&up, "api-version"), ["2025-01-24"]);
        // RFC 9745 and RFC 8594 formats, built at config load.
        let deprecation = header(&r, "deprecation").unwrap();
        assert!(
            deprecation.starts_with('@') && deprecation[1..].parse::<i64>().is_ok(),
            "{deprecation}"
        );
        let sunset = header(&r, "sunset").unwrap();
        assert!(httpdate::parse_http_date(sunset).is_ok(), "{sunset}");
        assert_eq!(
            header(&r, "link"),
            Some("<https://docs.example/versioning>; rel=\"deprecation\"")
        );
    }

    // A route that did not opt in leaves versions to the upstream.
    get(&p, "/public/x", &[("Api-Version", "whatever")]).await;
    assert_eq!(upstream_versions(&up, "api-version"), ["whatever"]);

    let m = p
        .metrics_with(r#"edge_proxy_api_requests_total{api_version="2025-01-24",route="v"} 3"#)
        .await;
    assert!(
        m.contains(r#"edge_proxy_api_requests_total{api_version="2026-12-01",route="v"} 1"#),
        "{m}"
    );
}

#[tokio::test]
async fn conflicting_unknown_and_retired_versions_are_refused_at_the_edge() {
    let (up, p) = start("api-version", "").await;
    type Case<'a> = (&'a [(&'a str, &'a str)], u16, &'a str);
    let cases: &[Case<'_>] = &[
        (
            &[
                ("api-version", "2025-01-24"),
                ("accept", "application/json; version=2026-12-01"),
            ],
            400,
            "conflicting_api_version",
        ),
        (
            &[("api-version", "2025-01-24, 2026-12-01")],
            400,
            "conflicting_api_version",
        ),
        (
            &[("api-version", "2026-12-02")],
            400,
            "unsupported_api_version",
        ),
        (&[("api-version", "latest")], 400, "unsupported_api_version"),
        (&[("api-version", "2024-01-01")], 410, "api_version_retired"),
    ];
    // On the authenticated route the version is refused before the (missing) token is.
    for path in ["/v/x", "/vauth/x"] {
        for (headers, status, code) in cases {
            let r = get(&p, path, headers).await;
            assert_eq!(r.status(), *status, "{path} {headers:?}");
            assert_eq!(header(&r, "content-type"), Some("application/json"));
            assert_eq!(header(&r, "api-version"), None, "no version was chosen");
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"], *code, "{path} {headers:?}");
            if *code == "unsupported_api_version" {
                assert_eq!(
                    body["supported"],
                    serde_json::json!(["2025-01-24", "2026-12-01"])
                );
            }
        }
    }
    assert!(up.forwarded().is_empty(), "no refusal reached the upstream");
    let m = p
        .metrics_with(r#"edge_proxy_api_requests_total{api_version="invalid",route="v"} 4"#)
        .await;
    assert!(
        m.contains(r#"edge_proxy_api_requests_total{api_version="2024-01-01",route="vauth"} 1"#),
        "{m}"
    );
}

#[tokio::test]
async fn the_upstream_gets_exactly_one_version_header_whatever_the_client_sends() {
    let (up, p) = start("x-api-version", "").await;
    let cases: &[(&str, &str)] = &[
        // Several copies of the scheme's header, in any case, agreeing.
        (
            "X-API-VERSION: 2025-01-24\r\nx-api-version: 2025-01-24\r\nX-Api-Version: 2025-01-24\r\n",
            "2025-01-24",
        ),
        // `Api-Version` is not this scheme's header: never read, never forwarded.
        ("Api-Version: 2024-01-01\r\nAPI-VERSION: 2025-01-24\r\n", "2026-12-01"),
        // Underscore and dot spellings never reach the upstream (R-ID-2).
        ("X_Api_Version: 2024-01-01\r\nx.api.version: 2024-01-01\r\n", "2026-12-01"),
        // A header the client names hop-by-hop is dropped at the edge (RFC 9110 7.6.1), so the
        // default applies (and the answer says so); the edge's own copy still goes upstream.
        ("Connection: x-api-version\r\nX-Api-Version: 2025-01-24\r\n", "2026-12-01"),
    ];
    for (extra, want) in cases {
        let before = up.forwarded().len();
        let req =
            format!("GET /v/x HTTP/1.1\r\nHost: api.example\r\n{extra}Connection: close\r\n\r\n");
        let a = raw(p.addr, req.as_bytes()).await;
        assert_eq!(a.status, Some(200), "{extra:?}: {}", a.head);
        assert_eq!(a.header("x-api-version"), Some(*want), "{extra:?}");
        assert_eq!(up.forwarded().len(), before + 1, "{extra:?}");
        let seen = up.forwarded().pop().unwrap().headers;
        let versions: Vec<_> = seen
            .iter()
            .filter(|(n, _)| {
                let n = n.as_str().replace(['_', '.'], "-");
                n == "x-api-version" || n == "api-version"
            })
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            versions,
            [("x-api-version".to_owned(), (*want).to_owned())],
            "{extra:?}"
        );
    }
}

#[tokio::test]
async fn a_brownout_answers_410_with_the_migration_link_only_inside_its_window() {
    let (up, p) = start("api-version", "").await;
    let old = [("api-version", "2025-01-24")];
    assert_eq!(get(&p, "/v/x", &old).await.status(), 200);

    p.clock.advance(Duration::from_secs(3600 + 60));
    let r = get(&p, "/v/x", &old).await;
    assert_eq!(r.status(), 410);
    assert_eq!(
        header(&r, "link"),
        Some("<https://docs.example/versioning>; rel=\"deprecation\"")
    );
    assert!(
        header(&r, "sunset").is_some(),
        "the brownout still says when the end is"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "api_version_retired");
    assert_eq!(body["link"], "https://docs.example/versioning");
    let forwarded = up.forwarded().len();
    // The current version is not browned out.
    assert_eq!(get(&p, "/v/x", &[]).await.status(), 200);
    assert_eq!(up.forwarded().len(), forwarded + 1);

    p.clock.advance(Duration::from_secs(3600));
    assert_eq!(
        get(&p, "/v/x", &old).await.status(),
        200,
        "the window is over"
    );
}

#[tokio::test]
async fn a_version_can_be_served_by_its_own_pool() {
    let legacy = TestUpstream::start().await;
    let extra = format!(
        r#"
[upstreams.legacy]
peers = ["{}"]
health_check_interval_ms = 200
"#,
        legacy.addr
    );
    let up = TestUpstream::start().await;
    let text = config("api-version", &extra).replace(
        "supported = [\"2026-12-01\", \"2025-01-24\"]",
        "supported = [\"2026-12-01\", \"2025-01-24\"]\nupstreams = { \"2025-01-24\" = \"legacy\" }",
    );
    let p = TestProxy::start_with(up.addr, &text, |_| None).await;
    assert_eq!(
        get(&p, "/v/a", &[("api-version", "2025-01-24")])
            .await
            .status(),
        200
    );
    assert_eq!(get(&p, "/v/b", &[]).await.status(), 200);
    let paths = |u: &TestUpstream| {
        u.forwarded()
            .into_iter()
            .map(|s| s.path)
            .collect::<Vec<_>>()
    };
    assert_eq!(paths(&legacy), ["/v/a"]);
    assert_eq!(paths(&up), ["/v/b"]);
    assert_eq!(upstream_versions(&legacy, "api-version"), ["2025-01-24"]);
}

#[tokio::test]
async fn a_sunset_before_its_deprecation_is_refused_at_load() {
    let mut text = config("api-version", "");
    let sunset_line = text
        .lines()
        .find(|l| l.starts_with("sunset = "))
        .unwrap()
        .to_owned();
    text = text.replace(&sunset_line, "sunset = \"2020-01-01T00:00:00Z\"");
    let full = format!(
        "{}\n{text}",
        crate::harness::config_toml(1, "127.0.0.1:1".parse().unwrap())
    );
    let err = edge_proxy::Config::from_toml(&full, &Default::default(), std::path::Path::new("."))
        .unwrap_err();
    assert!(
        err.to_string().contains("is before its deprecation"),
        "{err}"
    );
}
