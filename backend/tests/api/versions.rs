//! API versions end to end on the real app: golden answers of every endpoint in every version
//! (snapshot files under `snapshots/`: an accidental change to an old version's shape fails the
//! build), the version a request names or defaults to, and one OpenAPI document per version that
//! differs from the others by exactly the version changes.

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Value};
use todo_backend::versions::ApiVersion;

use crate::helpers::{spawn_app, TestApp, User};

/// Replaces what differs between runs: ids (numbered by first appearance, so references between
/// answers stay visible), timestamps and cursors.
struct Normaliser {
    ids: HashMap<String, usize>,
}

impl Normaliser {
    /// `text` with every id seen so far replaced (the paths and bodies of later requests).
    fn text(&self, text: &str) -> String {
        self.ids.iter().fold(text.to_owned(), |t, (id, n)| {
            t.replace(id.as_str(), &format!("<id {n}>"))
        })
    }

    fn apply(&mut self, v: &mut Value) {
        match v {
            Value::String(s) if uuid::Uuid::parse_str(s).is_ok() && s.len() == 36 => {
                let n = self.ids.len();
                let n = *self.ids.entry(s.clone()).or_insert(n);
                *s = format!("<id {n}>");
            }
            Value::String(s)
                if time::OffsetDateTime::parse(
                    s,
                    &time::format_description::well_known::Rfc3339,
                )
                .is_ok() =>
            {
                *s = "<time>".into();
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.apply(i)),
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if k == "next" && v.is_string() {
                        *v = "<cursor>".into();
                    } else {
                        self.apply(v);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Every endpoint once (and the interesting refusals), as `version` answers them.
async fn transcript(app: &TestApp, version: &str) -> Value {
    let mut out = Vec::new();
    let mut norm = Normaliser {
        ids: HashMap::new(),
    };
    let account = json!({"email": "golden@example.com", "password": "correct horse battery"}); // pragma: allowlist secret (test account)
    let r = app
        .client
        .post(app.url("/auth/register"))
        .header("api-version", version)
        .json(&account)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let echoed = r.headers()["api-version"].to_str().unwrap().to_owned();
    let mut body: Value = r.json().await.unwrap();
    let user = User {
        id: body["id"].as_str().unwrap().to_owned(),
        email: "golden@example.com".into(),
    };
    norm.apply(&mut body);
    out.push(json!({"call": "POST /auth/register", "status": status, "api_version": echoed, "body": body}));

    let mut step = async |method: &str, path: &str, body: Option<Value>| -> Value {
        let (status, headers, mut answer) = app
            .call_in(Some(version), &user, method, path, body.clone())
            .await;
        let raw = answer.clone();
        norm.apply(&mut answer);
        let mut sent = body.unwrap_or(Value::Null);
        norm.apply(&mut sent);
        out.push(json!({
            "call": format!("{method} {}", norm.text(path)),
            "sent": sent,
            "status": status,
            "api_version": headers.get("api-version").map(|v| v.to_str().unwrap()),
            "body": answer,
        }));
        raw
    };
    let old = version == ApiVersion::V2025_01_24.as_str();
    let due = if old { "due_date" } else { "due_on" };

    step("GET", "/me", None).await;
    let home = step("POST", "/categories", Some(json!({"name": "Home"}))).await;
    let home_id = home["id"].as_str().unwrap().to_owned();
    step(
        "POST",
        "/categories",
        Some(json!({"name": "Garden", "parent_id": home_id})),
    )
    .await;
    step("GET", "/categories", None).await;
    step(
        "PATCH",
        &format!("/categories/{home_id}"),
        Some(json!({"name": "House"})),
    )
    .await;
    let todo = step(
        "POST",
        "/todos",
        Some(json!({"title": "plant tulips", "category_id": home_id, due: "2026-12-24"})),
    )
    .await;
    let todo_id = todo["id"].as_str().unwrap().to_owned();
    step("POST", "/todos", Some(json!({"title": "no date"}))).await;
    step(
        "POST",
        "/todos",
        Some(json!({"title": "x", due: "tomorrow"})),
    )
    .await;
    // The other version's field name is not this version's: refused as unknown.
    let other = if old { "due_on" } else { "due_date" };
    step(
        "POST",
        "/todos",
        Some(json!({"title": "x", other: "2026-12-24"})),
    )
    .await;
    step("GET", &format!("/todos/{todo_id}"), None).await;
    step(
        "PATCH",
        &format!("/todos/{todo_id}"),
        Some(json!({"completed": true, due: "2027-01-02"})),
    )
    .await;
    step("GET", "/todos", None).await;
    step("GET", &format!("/todos?sort={due}&limit=1"), None).await;
    step("GET", "/todos?count=true&completed=true", None).await;
    step("GET", &format!("/todos?sort={other}"), None).await;
    step("DELETE", &format!("/todos/{todo_id}"), None).await;
    step("GET", &format!("/todos/{todo_id}"), None).await;
    step("DELETE", &format!("/categories/{home_id}"), None).await;
    Value::Array(out)
}

#[tokio::test]
async fn every_endpoint_answers_each_version_as_its_golden_file_says() {
    for v in ApiVersion::ALL {
        let app = spawn_app().await;
        let t = transcript(&app, v.as_str()).await;
        insta::assert_json_snapshot!(format!("golden-{}", v.as_str()), t);
    }
}

#[tokio::test]
async fn no_version_is_the_current_one_and_an_unknown_one_is_refused() {
    let app = spawn_app().await;
    let u = app.new_user("versions@example.com").await;
    let (s, h, _) = app.call_in(None, &u, "GET", "/me", None).await;
    assert_eq!(s, 200);
    assert_eq!(h["api-version"], ApiVersion::CURRENT.as_str());
    for bad in ["2026-12-02", "latest", ""] {
        let (s, _, body) = app.call_in(Some(bad), &u, "GET", "/me", None).await;
        assert_eq!(s, 400, "{bad}");
        assert_eq!(body["error"]["code"], "unsupported_api_version", "{bad}");
    }
}

/// JSON pointers of every leaf where `a` and `b` differ (a key on one side only counts as one).
fn differences(a: &Value, b: &Value, at: &str, out: &mut BTreeSet<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()).collect::<BTreeSet<_>>() {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (x.get(k), y.get(k)) {
                    (Some(l), Some(r)) => differences(l, r, &p, out),
                    _ => {
                        out.insert(p);
                    }
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (l, r)) in x.iter().zip(y).enumerate() {
                differences(l, r, &format!("{at}/{i}"), out);
            }
        }
        _ if a != b => {
            out.insert(at.to_owned());
        }
        _ => {}
    }
}

#[tokio::test]
async fn each_version_has_a_valid_openapi_document_that_differs_by_the_changes_only() {
    let app = spawn_app().await;
    let doc = |q: &'static str, header: Option<&'static str>| {
        let mut r = app.client.get(app.url(&format!("/openapi.json{q}")));
        if let Some(h) = header {
            r = r.header("api-version", h);
        }
        async move {
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let old = doc("?version=2025-01-24", None).await;
    let current = doc("?version=2026-12-01", None).await;
    assert_eq!(doc("", None).await, current, "no version: the current one");
    assert_eq!(
        doc("", Some("2025-01-24")).await,
        old,
        "the request's version"
    );
    for (v, d) in [("2025-01-24", &old), ("2026-12-01", &current)] {
        assert_eq!(d["info"]["version"], v);
        let parsed: Result<utoipa::openapi::OpenApi, _> = serde_json::from_value(d.clone());
        assert!(parsed.is_ok(), "{v}: {:?}", parsed.err());
    }
    let mut diff = BTreeSet::new();
    differences(&old, &current, "", &mut diff);
    let todo_props = |s: &str| {
        [
            format!("/components/schemas/{s}/properties/due_date"),
            format!("/components/schemas/{s}/properties/due_on"),
        ]
    };
    let mut want: BTreeSet<String> = ["Todo", "CreateTodo", "PatchTodo"]
        .iter()
        .flat_map(|s| todo_props(s))
        .collect();
    want.extend(
        [
            "/components/schemas/TodoPage/properties/total/description",
            "/components/schemas/TodoSort/enum/1",
            "/info/version",
        ]
        .map(String::from),
    );
    // The `count` parameter's description (its index in the list of GET /todos parameters).
    let count = current["paths"]["/todos"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .position(|p| p["name"] == "count")
        .unwrap();
    want.insert(format!("/paths/~1todos/get/parameters/{count}/description"));
    assert_eq!(diff, want);
}
