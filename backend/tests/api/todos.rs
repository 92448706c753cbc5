//! Todos and categories through the HTTP API, as a user the proxy asserted.

use serde_json::json;

use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn a_user_manages_todos_and_sees_only_their_own() {
    let app = spawn_app().await;
    let alice = app.new_user("alice@example.com").await;
    let bob = app.new_user("bob@example.com").await;

    let (s, t) = app
        .call(
            &alice,
            "POST",
            "/todos",
            Some(json!({"title": " write tests ", "due_on": "2026-12-24"})),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(
        (
            t["title"].as_str(),
            t["due_on"].as_str(),
            t["completed"].as_bool()
        ),
        (Some("write tests"), Some("2026-12-24"), Some(false))
    );
    let id = t["id"].as_str().unwrap().to_owned();
    let (s, _) = app
        .call(
            &alice,
            "POST",
            "/todos",
            Some(json!({"title": "second", "completed": true})),
        )
        .await;
    assert_eq!(s, 201);

    let (s, page) = app
        .call(&alice, "GET", "/todos?completed=false&count=true", None)
        .await;
    assert_eq!((s, page["total"].as_i64()), (200, Some(1)));
    let (_, page) = app
        .call(
            &alice,
            "GET",
            "/todos?limit=1&offset=1&sort=title&order=desc&count=true",
            None,
        )
        .await;
    assert_eq!(
        (
            page["total"].as_i64(),
            page["items"][0]["title"].as_str(),
            page["limit"].as_u64(),
            page["offset"].as_u64(),
            page.get("next"),
        ),
        (Some(2), Some("second"), Some(1), Some(1), None),
        "the deprecated offset still pages, and this was the last page"
    );

    // Bob sees nothing of Alice's: 404, never 403.
    let path = format!("/todos/{id}");
    let (s, b) = app.call(&bob, "GET", &path, None).await;
    assert_error(s, &b, 404, "not_found");
    let (s, _) = app
        .call(&bob, "PATCH", &path, Some(json!({"completed": true})))
        .await;
    assert_eq!(s, 404);
    let (s, _) = app.call(&bob, "DELETE", &path, None).await;
    assert_eq!(s, 404);
    let (_, page) = app.call(&bob, "GET", "/todos?count=true", None).await;
    assert_eq!(page["total"], 0);

    let (s, t) = app
        .call(
            &alice,
            "PATCH",
            &path,
            Some(json!({"completed": true, "due_on": null})),
        )
        .await;
    assert_eq!(
        (s, t["completed"].as_bool(), t["due_on"].is_null()),
        (200, Some(true), true)
    );
    let (s, _) = app.call(&alice, "DELETE", &path, None).await;
    assert_eq!(s, 204);
    let (s, _) = app.call(&alice, "GET", &path, None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn lists_page_by_cursor_and_count_only_when_asked() {
    let app = spawn_app().await;
    let alice = app.new_user("pager@example.com").await;
    for title in ["c", "a", "b", "e", "d"] {
        let (s, _) = app
            .call(&alice, "POST", "/todos", Some(json!({ "title": title })))
            .await;
        assert_eq!(s, 201);
    }
    let mut titles = Vec::new();
    let mut path = "/todos?sort=title&limit=2&count=true".to_owned();
    let mut pages = 0;
    loop {
        let (s, page) = app.call(&alice, "GET", &path, None).await;
        assert_eq!(
            (s, page["total"].as_i64(), page.get("offset")),
            (200, Some(5), None),
            "{page}"
        );
        pages += 1;
        titles.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["title"].clone()),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/todos?sort=title&limit=2&count=true&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(
        (pages, titles),
        (
            3,
            vec![json!("a"), json!("b"), json!("c"), json!("d"), json!("e")]
        )
    );

    let (s, page) = app
        .call(&alice, "GET", "/todos?count=false&limit=1", None)
        .await;
    assert_eq!(
        (s, page.get("total"), page["next"].is_string()),
        (200, None, true),
        "{page}"
    );
    let next = page["next"].as_str().unwrap().to_owned();

    // A cursor of another order, a forged one, and a cursor with an offset are refused by name.
    for (query, field) in [
        (format!("sort=title&cursor={next}"), "cursor"),
        ("cursor=bm90LWEtY3Vyc29y".to_owned(), "cursor"),
        ("cursor=%22%3B--".to_owned(), "cursor"),
        (format!("cursor={next}&offset=1"), "offset"),
    ] {
        let (s, b) = app
            .call(&alice, "GET", &format!("/todos?{query}"), None)
            .await;
        assert_error(s, &b, 422, "validation_failed");
        assert_eq!(b["error"]["details"][0]["field"], field, "{query}: {b}");
    }
}

#[tokio::test]
async fn invalid_todo_input_gets_422_naming_the_field() {
    let app = spawn_app().await;
    let u = app.new_user("frank@example.com").await;
    for (body, field) in [
        (json!({"title": ""}), "title"),
        (json!({"title": "x", "due_on": "tomorrow"}), "due_on"),
        (json!({"title": "x".repeat(201)}), "title"),
        // The documented maxLength counts the title as sent, spaces included.
        (json!({"title": format!("{} ", "x".repeat(200))}), "title"),
        // PostgreSQL cannot store NUL in text: refused on every store, before the database.
        (
            json!({"title": "x", "description": "a\u{0}b"}),
            "description",
        ),
    ] {
        let (s, b) = app.call(&u, "POST", "/todos", Some(body)).await;
        assert_error(s, &b, 422, "validation_failed");
        assert_eq!(b["error"]["details"][0]["field"], field, "{b}");
    }
    let (s, b) = app
        .call(
            &u,
            "POST",
            "/todos",
            Some(json!({"title": "x", "category_id": uuid::Uuid::new_v4()})),
        )
        .await;
    // Well formed, but the caller has no such category: a conflict with their data.
    assert_error(s, &b, 409, "unknown_category");
    let (s, b) = app
        .call(
            &u,
            "POST",
            "/todos",
            Some(json!({"title": "x", "completed": 99999999999999999999u128.to_string()})),
        )
        .await;
    assert_error(s, &b, 422, "validation_failed");
    let (s, b) = app.call(&u, "GET", "/todos?limit=1000", None).await;
    assert_error(s, &b, 422, "validation_failed");
    let (s, b) = app
        .call(&u, "GET", "/todos?limit=99999999999999999999", None)
        .await;
    assert_error(s, &b, 422, "validation_failed");
    let (s, b) = app.call(&u, "GET", "/todos/not-a-uuid", None).await;
    assert_error(s, &b, 404, "not_found");
    let (s, b) = app
        .call(
            &u,
            "PATCH",
            "/todos/00000000-0000-0000-0000-000000000000",
            Some(json!({})),
        )
        .await;
    assert_error(s, &b, 422, "validation_failed");
    // `null` cannot remove a title, a description or the completion flag (the schema says so too).
    let (_, t) = app
        .call(&u, "POST", "/todos", Some(json!({"title": "keep"})))
        .await;
    let path = format!("/todos/{}", t["id"].as_str().unwrap());
    for field in ["title", "description", "completed"] {
        let (s, b) = app
            .call(
                &u,
                "PATCH",
                &path,
                Some(json!({field: null, "due_on": null})),
            )
            .await;
        assert_error(s, &b, 422, "validation_failed");
        assert_eq!(b["error"]["details"][0]["field"], field, "{b}");
    }
    let (_, still) = app.call(&u, "GET", &path, None).await;
    assert_eq!(still["title"], "keep");
    // Only the hyphenated form of a category id is documented, so only it is accepted.
    let (s, b) = app
        .call(
            &u,
            "GET",
            "/todos?category_id=00000000000000000000000000000000",
            None,
        )
        .await;
    assert_error(s, &b, 422, "validation_failed");
}

#[tokio::test]
async fn categories_form_a_tree_with_a_clear_delete_rule() {
    let app = spawn_app().await;
    let u = app.new_user("gina@example.com").await;
    let (s, home) = app
        .call(&u, "POST", "/categories", Some(json!({"name": "home"})))
        .await;
    assert_eq!(s, 201);
    let home_id = home["id"].as_str().unwrap().to_owned();
    let (_, garden) = app
        .call(
            &u,
            "POST",
            "/categories",
            Some(json!({"name": "garden", "parent_id": home_id})),
        )
        .await;
    let garden_id = garden["id"].as_str().unwrap().to_owned();
    let (_, tree) = app.call(&u, "GET", "/categories", None).await;
    assert_eq!(tree[0]["name"], "home");
    assert_eq!(tree[0]["children"][0]["name"], "garden");

    let (s, b) = app
        .call(
            &u,
            "PATCH",
            &format!("/categories/{home_id}"),
            Some(json!({"parent_id": garden_id})),
        )
        .await;
    assert_error(s, &b, 409, "category_cycle");
    let (s, b) = app
        .call(&u, "DELETE", &format!("/categories/{home_id}"), None)
        .await;
    assert_error(s, &b, 409, "category_has_children");

    let (_, t) = app
        .call(
            &u,
            "POST",
            "/todos",
            Some(json!({"title": "mow", "category_id": garden_id})),
        )
        .await;
    let (s, moved) = app
        .call(
            &u,
            "PATCH",
            &format!("/categories/{garden_id}"),
            Some(json!({"parent_id": null, "name": "yard"})),
        )
        .await;
    assert_eq!(
        (s, moved["name"].as_str(), moved["parent_id"].is_null()),
        (200, Some("yard"), true)
    );
    let (s, _) = app
        .call(&u, "DELETE", &format!("/categories/{garden_id}"), None)
        .await;
    assert_eq!(s, 204);
    let (_, t) = app
        .call(
            &u,
            "GET",
            &format!("/todos/{}", t["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert!(
        t["category_id"].is_null(),
        "todos of a deleted category are kept, uncategorised"
    );

    let other = app.new_user("hank@example.com").await;
    let (s, _) = app
        .call(&other, "DELETE", &format!("/categories/{home_id}"), None)
        .await;
    assert_eq!(s, 404);
    let (s, b) = app
        .call(
            &other,
            "POST",
            "/categories",
            Some(json!({"name": "x", "parent_id": home_id})),
        )
        .await;
    // Another user's category is indistinguishable from one that does not exist.
    assert_error(s, &b, 409, "unknown_category");
}
