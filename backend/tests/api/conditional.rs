//! Conditional GETs (DESIGN.md 7.2) on the real app: every cacheable GET carries an `ETag` and
//! `Cache-Control: private, no-cache`; the current tag in `If-None-Match` gets `304` without the list
//! being read; every write changes the tag of exactly what it changes, and a refused write changes
//! none; and two replicas on one database agree, on SQLite and PostgreSQL.

use std::sync::Arc;

use serde_json::{json, Value};
use todo_backend::store::{PgStore, SqliteStore, Store};

use crate::helpers::{assertion, pg_database, spawn_app, spawn_with, DbGuard, TestApp, User};

/// `GET path` as `user`, with `If-None-Match: tag` when given: status, `ETag`, `Cache-Control`, body.
async fn get(
    app: &TestApp,
    user: &User,
    path: &str,
    tag: Option<&str>,
) -> (u16, Option<String>, Option<String>, String) {
    let mut r = app
        .client
        .get(app.url(path))
        .header("x-user-id", &user.id)
        .header(
            "x-identity-assertion",
            assertion(user, "GET", path.split('?').next().unwrap()),
        );
    if let Some(t) = tag {
        r = r.header("if-none-match", t);
    }
    let r = r.send().await.unwrap();
    let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
    let (status, etag, cc) = (r.status().as_u16(), h("etag"), h("cache-control"));
    (status, etag, cc, r.text().await.unwrap())
}

/// The app's metrics text (admin listener).
async fn metrics(app: &TestApp) -> String {
    let url = format!("http://{}/metrics", app.admin_addr);
    app.client
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn tag(app: &TestApp, user: &User, path: &str) -> String {
    let (s, etag, _, body) = get(app, user, path, None).await;
    assert_eq!(s, 200, "{path}: {body}");
    etag.unwrap()
}

#[tokio::test]
async fn every_cacheable_get_is_tagged_and_the_current_tag_gets_304() {
    let app = spawn_app().await;
    let u = app.new_user("etag@example.com").await;
    let (_, todo) = app
        .call(&u, "POST", "/todos", Some(json!({"title": "t"})))
        .await;
    let one = format!("/todos/{}", todo["id"].as_str().unwrap());
    for path in [
        "/todos",
        "/todos?limit=1&count=true",
        &one,
        "/categories",
        "/me",
    ] {
        let (s, etag, cc, _) = get(&app, &u, path, None).await;
        assert_eq!(s, 200, "{path}");
        let etag = etag.unwrap_or_else(|| panic!("{path}: no ETag"));
        assert!(
            etag.starts_with('"') && etag.ends_with('"'),
            "a strong tag: {etag}"
        );
        assert_eq!(cc.as_deref(), Some("private, no-cache"), "{path}");
        for matching in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"other\", {etag}"),
            "*".into(),
        ] {
            let (s, again, cc, body) = get(&app, &u, path, Some(&matching)).await;
            assert_eq!((s, body.as_str()), (304, ""), "{path} {matching}");
            assert_eq!(again.as_ref(), Some(&etag), "a 304 repeats the tag");
            assert_eq!(cc.as_deref(), Some("private, no-cache"));
        }
        let (s, _, _, _) = get(&app, &u, path, Some("\"other\"")).await;
        assert_eq!(s, 200, "{path}: another tag gets the answer");
    }
    // Another query, another user and another API version each have their own tag.
    assert_ne!(
        tag(&app, &u, "/todos").await,
        tag(&app, &u, "/todos?limit=1").await
    );
    let v = app.new_user("other@example.com").await;
    assert_ne!(
        tag(&app, &u, "/categories").await,
        tag(&app, &v, "/categories").await
    );
    let (_, old, _) = app
        .call_in(Some("2025-01-24"), &u, "GET", "/todos", None)
        .await;
    assert_ne!(old["etag"], tag(&app, &u, "/todos").await.as_str());
}

/// The tags of the cacheable reads: the list, one todo (`None` once it is gone), the categories, me.
async fn tags(app: &TestApp, u: &User, one: &str) -> [Option<String>; 4] {
    let (s, todo, _, _) = get(app, u, one, None).await;
    [
        Some(tag(app, u, "/todos").await),
        (s == 200).then_some(todo).flatten(),
        Some(tag(app, u, "/categories").await),
        Some(tag(app, u, "/me").await),
    ]
}

/// Which of `tags`' reads changed between `a` and `b`.
fn changed(a: &[Option<String>; 4], b: &[Option<String>; 4]) -> Vec<&'static str> {
    ["todos", "todo", "categories", "me"]
        .into_iter()
        .zip(a.iter().zip(b))
        .filter(|(_, (x, y))| x != y)
        .map(|(n, _)| n)
        .collect()
}

#[tokio::test]
async fn each_write_changes_the_tags_of_what_it_changes_and_a_refused_one_none() {
    let app = spawn_app().await;
    let u = app.new_user("writes@example.com").await;
    let (_, cat) = app
        .call(&u, "POST", "/categories", Some(json!({"name": "home"})))
        .await;
    let cat = format!("/categories/{}", cat["id"].as_str().unwrap());
    let (_, t) = app
        .call(
            &u,
            "POST",
            "/todos",
            Some(json!({"title": "t", "category_id": cat[12..]})),
        )
        .await;
    let one = format!("/todos/{}", t["id"].as_str().unwrap());
    let mut before = tags(&app, &u, &one).await;
    type Step<'a> = (&'a str, &'a str, Option<Value>, u16, &'a [&'a str]);
    let steps: Vec<Step<'_>> = vec![
        (
            "POST",
            "/todos",
            Some(json!({"title": "second"})),
            201,
            &["todos", "todo"],
        ),
        (
            "PATCH",
            &one,
            Some(json!({"completed": true})),
            200,
            &["todos", "todo"],
        ),
        ("PATCH", &one, Some(json!({"due_on": "never"})), 422, &[]),
        (
            "POST",
            "/todos",
            Some(json!({"title": "x", "category_id": one[7..]})),
            409,
            &[],
        ),
        (
            "POST",
            "/categories",
            Some(json!({"name": "work"})),
            201,
            &["categories"],
        ),
        (
            "PATCH",
            &cat,
            Some(json!({"name": "house"})),
            200,
            &["categories"],
        ),
        // Deleting a category uncategorises its todos: their answers change too.
        ("DELETE", &cat, None, 204, &["todos", "todo", "categories"]),
        ("DELETE", &one, None, 204, &["todos", "todo"]),
    ];
    for (method, path, body, status, want) in steps {
        let (s, answer) = app.call(&u, method, path, body).await;
        assert_eq!(s, status, "{method} {path}: {answer}");
        let after = tags(&app, &u, &one).await;
        assert_eq!(changed(&before, &after), want, "{method} {path}");
        before = after;
    }
}

#[tokio::test]
async fn a_304_costs_one_indexed_read_and_no_list() {
    let app = spawn_app().await;
    let u = app.new_user("cost@example.com").await;
    for i in 0..3 {
        app.call(
            &u,
            "POST",
            "/todos",
            Some(json!({ "title": format!("t{i}") })),
        )
        .await;
    }
    let etag = tag(&app, &u, "/todos").await;
    let ops = || async {
        let text = metrics(&app).await;
        let count = |op: &str| {
            let needle = format!("todo_backend_db_query_duration_seconds_count{{op=\"{op}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(needle.as_str()))
                .map_or(0, |n| n.trim().parse::<u64>().unwrap())
        };
        (count("list_todos"), count("data_versions"))
    };
    let (lists, versions) = ops().await;
    for _ in 0..5 {
        assert_eq!(get(&app, &u, "/todos", Some(&etag)).await.0, 304);
    }
    assert_eq!(ops().await, (lists, versions + 5), "no list read for a 304");
}

/// Two backend replicas on one database: the same tag, and a write through one is seen by the other.
async fn replicas_agree(a: TestApp, b: TestApp) {
    let u = a.new_user("replicas@example.com").await;
    let t1 = tag(&a, &u, "/todos").await;
    assert_eq!(t1, tag(&b, &u, "/todos").await, "the same tag everywhere");
    let (s, _) = b
        .call(&u, "POST", "/todos", Some(json!({"title": "via b"})))
        .await;
    assert_eq!(s, 201);
    let (s, t2, _, body) = get(&a, &u, "/todos", Some(&t1)).await;
    assert_eq!(s, 200, "replica a sees b's write at once");
    assert!(body.contains("via b"));
    assert_eq!(get(&b, &u, "/todos", t2.as_deref()).await.0, 304);
    // Replica a's cached category tree is of the old version: b's write makes a miss it.
    for _ in 0..2 {
        assert_eq!(get(&a, &u, "/categories", None).await.3, "[]");
    }
    let (s, _) = b
        .call(&u, "POST", "/categories", Some(json!({"name": "via b"})))
        .await;
    assert_eq!(s, 201);
    assert!(get(&a, &u, "/categories", None).await.3.contains("via b"));
    let metrics = metrics(&a).await;
    for line in [
        r#"todo_backend_cache_requests_total{cache="category_tree",result="hit"} 1"#,
        r#"todo_backend_cache_requests_total{cache="category_tree",result="miss"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
}

#[tokio::test]
async fn replicas_on_one_sqlite_database_agree() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("todo.db");
    let open = || async {
        let s = SqliteStore::connect(&path, &Default::default(), true)
            .await
            .unwrap();
        Arc::new(s) as Arc<dyn Store>
    };
    let (sa, sb) = (open().await, open().await);
    let spare = DbGuard::Sqlite(tempfile::tempdir().unwrap());
    let a = spawn_with(sa, DbGuard::Sqlite(dir)).await;
    let b = spawn_with(sb, spare).await;
    replicas_agree(a, b).await;
}

#[tokio::test]
async fn replicas_on_one_postgres_database_agree() {
    let Some((pool, guard)) = pg_database().await else {
        return;
    };
    let sa = PgStore::from_pool(pool.clone());
    sa.migrate().await.unwrap();
    let sb = PgStore::from_pool(pool);
    let a = spawn_with(Arc::new(sa), guard).await;
    let b = spawn_with(Arc::new(sb), DbGuard::Sqlite(tempfile::tempdir().unwrap())).await;
    replicas_agree(a, b).await;
}
