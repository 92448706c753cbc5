//! One contract suite for every `Store` implementation: SQLite always, PostgreSQL with `DATABASE_URL`.

use std::sync::Arc;

use time::macros::date;
use todo_backend::domain::{
    CategoryFilter, CategoryName, Email, NewTodo, PageStart, SortOrder, TodoDescription,
    TodoFilter, TodoPatch, TodoSort, TodoTitle,
};
use todo_backend::store::{Store, StoreError};

use crate::helpers::{pg_store, sqlite_store};

fn todo(title: &str) -> NewTodo {
    NewTodo {
        title: TodoTitle::parse(title).unwrap(),
        description: TodoDescription::parse("").unwrap(),
        completed: false,
        category_id: None,
        due_date: None,
    }
}

fn all() -> TodoFilter {
    TodoFilter {
        limit: 100,
        count: true,
        ..TodoFilter::default()
    }
}

async fn check_store(s: Arc<dyn Store>) {
    s.ping().await.unwrap();

    // Users: unique email, credentials by normalised email.
    let alice_email = Email::parse("alice@example.com").unwrap();
    let alice = s.create_user(&alice_email, "$argon2id$hash").await.unwrap();
    assert!(matches!(
        s.create_user(&alice_email, "x").await,
        Err(StoreError::Conflict)
    ));
    let bob = s
        .create_user(&Email::parse("bob@example.com").unwrap(), "h")
        .await
        .unwrap();
    let creds = s.user_credentials(&alice_email).await.unwrap().unwrap();
    assert_eq!(
        (creds.id, creds.password_hash.as_str(), creds.disabled),
        (alice.id, "$argon2id$hash", false)
    );
    assert_eq!(creds.roles, vec!["user".to_owned()]);
    assert_eq!(
        s.user(alice.id).await.unwrap().unwrap().email,
        "alice@example.com"
    );
    assert!(s
        .user_credentials(&Email::parse("nobody@example.com").unwrap())
        .await
        .unwrap()
        .is_none());

    // Categories: a tree, owned per user.
    let work = s
        .create_category(alice.id, &CategoryName::parse("work").unwrap(), None)
        .await
        .unwrap();
    let urgent = s
        .create_category(
            alice.id,
            &CategoryName::parse("urgent").unwrap(),
            Some(work.id),
        )
        .await
        .unwrap();
    assert_eq!(urgent.parent_id, Some(work.id));
    assert!(
        matches!(
            s.create_category(bob.id, &CategoryName::parse("x").unwrap(), Some(work.id))
                .await,
            Err(StoreError::InvalidReference)
        ),
        "bob cannot nest under alice's category"
    );
    assert!(matches!(
        s.update_category(alice.id, work.id, None, Some(Some(urgent.id)))
            .await,
        Err(StoreError::Cycle)
    ));
    assert!(matches!(
        s.update_category(alice.id, work.id, None, Some(Some(work.id)))
            .await,
        Err(StoreError::Cycle)
    ));
    let renamed = s
        .update_category(
            alice.id,
            urgent.id,
            Some(&CategoryName::parse("now").unwrap()),
            Some(None),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((renamed.name.as_str(), renamed.parent_id), ("now", None));
    assert!(s
        .update_category(bob.id, urgent.id, None, Some(None))
        .await
        .unwrap()
        .is_none());
    let _ = s
        .update_category(alice.id, urgent.id, None, Some(Some(work.id)))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        s.delete_category(alice.id, work.id).await,
        Err(StoreError::HasChildren)
    ));
    assert_eq!(s.categories(alice.id).await.unwrap().len(), 2);
    assert!(s.categories(bob.id).await.unwrap().is_empty());

    // Todos: create, scope, filter, order, paginate.
    let mut t1 = todo("b first");
    t1.category_id = Some(urgent.id);
    t1.due_date = Some(date!(2026 - 12 - 01));
    let t1 = s.create_todo(alice.id, &t1).await.unwrap();
    let mut t2 = todo("a second");
    t2.due_date = Some(date!(2026 - 11 - 01));
    t2.completed = true;
    let t2 = s.create_todo(alice.id, &t2).await.unwrap();
    let t3 = s.create_todo(alice.id, &todo("c third")).await.unwrap();
    let mut foreign = todo("x");
    foreign.category_id = Some(work.id);
    assert!(matches!(
        s.create_todo(bob.id, &foreign).await,
        Err(StoreError::InvalidReference)
    ));
    let bobs = s.create_todo(bob.id, &todo("bob's")).await.unwrap();

    assert!(
        s.todo(bob.id, t1.id).await.unwrap().is_none(),
        "another user's todo is invisible"
    );
    assert_eq!(s.todo(alice.id, t1.id).await.unwrap().unwrap(), t1);

    let page = s.list_todos(alice.id, &all()).await.unwrap();
    assert_eq!(page.total, Some(3));
    assert_eq!(
        page.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![t1.id, t2.id, t3.id],
        "created_at order"
    );
    let by_title = s
        .list_todos(
            alice.id,
            &TodoFilter {
                sort: TodoSort::Title,
                ..all()
            },
        )
        .await
        .unwrap();
    assert_eq!(by_title.items[0].id, t2.id);
    let by_due_desc = s
        .list_todos(
            alice.id,
            &TodoFilter {
                sort: TodoSort::DueDate,
                order: SortOrder::Desc,
                ..all()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        by_due_desc.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![t1.id, t2.id, t3.id],
        "no due date sorts last"
    );
    let done = s
        .list_todos(
            alice.id,
            &TodoFilter {
                completed: Some(true),
                ..all()
            },
        )
        .await
        .unwrap();
    assert_eq!((done.total, done.items[0].id), (Some(1), t2.id));
    let in_cat = s
        .list_todos(
            alice.id,
            &TodoFilter {
                category: Some(CategoryFilter::In(urgent.id)),
                ..all()
            },
        )
        .await
        .unwrap();
    assert_eq!((in_cat.total, in_cat.items[0].id), (Some(1), t1.id));
    let uncategorised = s
        .list_todos(
            alice.id,
            &TodoFilter {
                category: Some(CategoryFilter::Uncategorised),
                ..all()
            },
        )
        .await
        .unwrap();
    assert_eq!(uncategorised.total, Some(2));
    let due_before = s
        .list_todos(
            alice.id,
            &TodoFilter {
                due_before: Some(date!(2026 - 11 - 15)),
                ..all()
            },
        )
        .await
        .unwrap();
    assert_eq!((due_before.total, due_before.items[0].id), (Some(1), t2.id));
    let page2 = s
        .list_todos(
            alice.id,
            &TodoFilter {
                limit: 2,
                start: PageStart::Offset(2),
                ..all()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (
            page2.total,
            page2.items.len(),
            page2.items[0].id,
            page2.next
        ),
        (Some(3), 1, t3.id, None)
    );

    // Patch: partial, nullable fields cleared, scoped.
    let patched = s
        .update_todo(
            alice.id,
            t1.id,
            &TodoPatch {
                completed: Some(true),
                due_date: Some(None),
                category_id: Some(None),
                ..TodoPatch::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(patched.completed && patched.due_date.is_none() && patched.category_id.is_none());
    assert_eq!(patched.title, "b first");
    assert!(patched.updated_at >= t1.updated_at);
    assert!(s
        .update_todo(
            bob.id,
            t1.id,
            &TodoPatch {
                completed: Some(false),
                ..TodoPatch::default()
            }
        )
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        s.update_todo(
            alice.id,
            t1.id,
            &TodoPatch {
                category_id: Some(Some(uuid::Uuid::new_v4())),
                ..TodoPatch::default()
            }
        )
        .await,
        Err(StoreError::InvalidReference)
    ));

    // Deleting a category keeps its todos, uncategorised.
    let mut t4 = todo("in now");
    t4.category_id = Some(urgent.id);
    let t4 = s.create_todo(alice.id, &t4).await.unwrap();
    assert!(s.delete_category(alice.id, urgent.id).await.unwrap());
    assert_eq!(
        s.todo(alice.id, t4.id).await.unwrap().unwrap().category_id,
        None
    );
    assert!(
        s.delete_category(alice.id, work.id).await.unwrap(),
        "no children left"
    );
    assert!(!s.delete_category(alice.id, work.id).await.unwrap());

    // Delete: scoped.
    assert!(!s.delete_todo(alice.id, bobs.id).await.unwrap());
    assert!(s.delete_todo(bob.id, bobs.id).await.unwrap());
    assert!(s.delete_todo(alice.id, t2.id).await.unwrap());
    assert!(!s.delete_todo(alice.id, t2.id).await.unwrap());
    assert_eq!(s.list_todos(alice.id, &all()).await.unwrap().total, Some(3));
}

#[tokio::test]
async fn sqlite_store_meets_the_store_contract() {
    let (store, _guard) = sqlite_store().await;
    check_store(store).await;
}

#[tokio::test]
async fn postgres_store_meets_the_store_contract() {
    let Some((store, _guard)) = pg_store().await else {
        return;
    };
    check_store(store).await;
}

/// A clock the test sets before each write.
pub(crate) fn settable_clock() -> (
    todo_backend::store::Clock,
    Arc<std::sync::Mutex<time::OffsetDateTime>>,
) {
    let at = Arc::new(std::sync::Mutex::new(time::OffsetDateTime::now_utc()));
    let read = Arc::clone(&at);
    (Arc::new(move || *read.lock().unwrap()), at)
}

/// Order means the same on both databases: times within one second with fractions of different
/// lengths (SQLite keeps them as text), and titles in mixed case and beyond ASCII (PostgreSQL
/// collates linguistically by default, SQLite by code point).
async fn check_order(s: Arc<dyn Store>, clock: Arc<std::sync::Mutex<time::OffsetDateTime>>) {
    use time::macros::datetime;
    let owner = s
        .create_user(&Email::parse("order@example.com").unwrap(), "h")
        .await
        .unwrap();
    let base = datetime!(2026-12-01 12:00:00 UTC);
    let ms = |n: i64| base + time::Duration::microseconds(n);
    // Created in this order, at these instants (microseconds past 12:00:00).
    let rows = [
        ("banana", 500_000),
        ("Apple", 500_001),
        ("cherry", 0),
        ("apple", 100_000),
        ("Éclair", 123_450),
        ("zebra", 123_451),
        ("Zoo", 999_999),
        ("a", 1_000_000),
    ];
    for (title, at) in rows {
        *clock.lock().unwrap() = ms(at);
        s.create_todo(owner.id, &todo(title)).await.unwrap();
    }
    let list = |sort, order| {
        let s = Arc::clone(&s);
        async move {
            let f = TodoFilter {
                sort,
                order,
                ..all()
            };
            let page = s.list_todos(owner.id, &f).await.unwrap();
            page.items
                .into_iter()
                .map(|t| (t.title, t.created_at))
                .collect::<Vec<_>>()
        }
    };
    let mut by_time: Vec<_> = rows
        .iter()
        .map(|(t, at)| (t.to_string(), ms(*at)))
        .collect();
    by_time.sort_by_key(|(_, at)| *at);
    assert_eq!(list(TodoSort::CreatedAt, SortOrder::Asc).await, by_time);
    by_time.reverse();
    assert_eq!(list(TodoSort::CreatedAt, SortOrder::Desc).await, by_time);

    // Case-insensitive for ASCII letters, then exact; by code point beyond ASCII, on both.
    let mut by_title: Vec<String> = rows.iter().map(|(t, _)| t.to_string()).collect();
    by_title.sort_by(|a, b| {
        (a.to_ascii_lowercase(), a.as_str()).cmp(&(b.to_ascii_lowercase(), b.as_str()))
    });
    assert_eq!(
        by_title,
        ["a", "Apple", "apple", "banana", "cherry", "zebra", "Zoo", "Éclair"]
    );
    let titles = |v: Vec<(String, time::OffsetDateTime)>| -> Vec<String> {
        v.into_iter().map(|(t, _)| t).collect()
    };
    assert_eq!(
        titles(list(TodoSort::Title, SortOrder::Asc).await),
        by_title
    );
    by_title.reverse();
    assert_eq!(
        titles(list(TodoSort::Title, SortOrder::Desc).await),
        by_title
    );

    // Category names follow the same rule.
    for name in ["beta", "Alpha", "alpha", "Ärger", "Zulu"] {
        s.create_category(owner.id, &CategoryName::parse(name).unwrap(), None)
            .await
            .unwrap();
    }
    let names: Vec<String> = s
        .categories(owner.id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["Alpha", "alpha", "beta", "Zulu", "Ärger"]);
}

#[tokio::test]
async fn order_is_the_same_on_sqlite() {
    let (clock, at) = settable_clock();
    let (store, _guard) = crate::helpers::sqlite_store_with(clock).await;
    check_order(store, at).await;
}

#[tokio::test]
async fn order_is_the_same_on_postgres() {
    let (clock, at) = settable_clock();
    let Some((store, _guard)) = crate::helpers::pg_store_with(clock).await else {
        return;
    };
    check_order(store, at).await;
}

/// Two PATCHes of different fields of one todo, at the same time: both take effect.
async fn check_no_lost_update(s: Arc<dyn Store>) {
    let owner = s
        .create_user(&Email::parse("patch@example.com").unwrap(), "h")
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(
            s.create_todo(owner.id, &todo(&format!("t{i}")))
                .await
                .unwrap()
                .id,
        );
    }
    let rounds = ids.iter().map(|&id| {
        let s = Arc::clone(&s);
        async move {
            let title = TodoPatch {
                title: Some(TodoTitle::parse("renamed").unwrap()),
                ..TodoPatch::default()
            };
            let done = TodoPatch {
                completed: Some(true),
                ..TodoPatch::default()
            };
            let (a, b) = tokio::join!(
                s.update_todo(owner.id, id, &title),
                s.update_todo(owner.id, id, &done)
            );
            a.unwrap().unwrap();
            b.unwrap().unwrap();
        }
    });
    futures_join_all(rounds).await;
    for id in ids {
        let t = s.todo(owner.id, id).await.unwrap().unwrap();
        assert_eq!(
            (t.title.as_str(), t.completed),
            ("renamed", true),
            "{id}: an update was lost"
        );
    }
}

/// Runs the futures concurrently (spawned, so they overlap on the pool).
pub(crate) async fn futures_join_all<F>(futs: impl Iterator<Item = F>)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    for h in handles {
        h.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_of_different_fields_lose_nothing_on_postgres() {
    let Some((store, _guard)) = pg_store().await else {
        return;
    };
    check_no_lost_update(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_of_different_fields_lose_nothing_on_sqlite() {
    let (store, _guard) = sqlite_store().await;
    check_no_lost_update(store).await;
}

/// Two moves at the same time, A under B and B under A: at most one succeeds, and no cycle forms.
async fn check_no_cycle_race(s: Arc<dyn Store>) {
    let owner = s
        .create_user(&Email::parse("tree@example.com").unwrap(), "h")
        .await
        .unwrap();
    let mut pairs = Vec::new();
    for i in 0..25 {
        let name = |n: &str| CategoryName::parse(&format!("{n}{i}")).unwrap();
        let a = s
            .create_category(owner.id, &name("a"), None)
            .await
            .unwrap()
            .id;
        let b = s
            .create_category(owner.id, &name("b"), None)
            .await
            .unwrap()
            .id;
        pairs.push((a, b));
    }
    let moves = pairs.iter().map(|&(a, b)| {
        let s = Arc::clone(&s);
        async move {
            let (x, y) = tokio::join!(
                s.update_category(owner.id, a, None, Some(Some(b))),
                s.update_category(owner.id, b, None, Some(Some(a)))
            );
            let ok = [&x, &y].iter().filter(|r| matches!(r, Ok(Some(_)))).count();
            assert_eq!(ok, 1, "exactly one move wins: {x:?} / {y:?}");
            assert!(
                [&x, &y].iter().any(|r| matches!(r, Err(StoreError::Cycle))),
                "the other is refused as a cycle: {x:?} / {y:?}"
            );
        }
    });
    futures_join_all(moves).await;
    // And the stored tree has no loop: every category reaches a root.
    let cats = s.categories(owner.id).await.unwrap();
    let parent: std::collections::HashMap<_, _> =
        cats.iter().map(|c| (c.id, c.parent_id)).collect();
    for c in &cats {
        let (mut at, mut steps) = (Some(c.id), 0);
        while let Some(id) = at {
            at = parent[&id];
            steps += 1;
            assert!(steps <= cats.len(), "a cycle through {}", c.id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_opposite_moves_cannot_make_a_cycle_on_postgres() {
    let Some((store, _guard)) = pg_store().await else {
        return;
    };
    check_no_cycle_race(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_opposite_moves_cannot_make_a_cycle_on_sqlite() {
    let (store, _guard) = sqlite_store().await;
    check_no_cycle_race(store).await;
}

/// Rows written before migration 0002 (sqlx's variable-length fractions) are rewritten fixed-width,
/// so they sort by time and read back unchanged.
#[tokio::test]
async fn sqlite_timestamps_written_before_0002_are_rewritten_fixed_width() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("todo.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let mut first = sqlx::migrate!("../migrations/sqlite");
    first.migrations = first.migrations[..1].to_vec().into();
    first.run(&pool).await.unwrap();
    let user = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, 'old@example.com', 'h', '2026-12-01T12:00:00.5Z')")
        .bind(user)
        .execute(&pool)
        .await
        .unwrap();
    // As sqlx 0.8 wrote them: trailing zeros dropped, no fraction at all on a whole second.
    for (title, at) in [
        ("third", "2026-12-01T12:00:00.5Z"),
        ("second", "2026-12-01T12:00:00.123451Z"),
        ("first", "2026-12-01T12:00:00.12345Z"),
        ("zeroth", "2026-12-01T12:00:00Z"),
    ] {
        sqlx::query("INSERT INTO todos (id, user_id, title, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)")
            .bind(uuid::Uuid::new_v4())
            .bind(user)
            .bind(title)
            .bind(at)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    let store = todo_backend::store::SqliteStore::connect(&path, &Default::default(), true)
        .await
        .unwrap();
    let page = store.list_todos(user, &all()).await.unwrap();
    let got: Vec<(String, String)> = page
        .items
        .into_iter()
        .map(|t| (t.title, t.created_at.to_string()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "zeroth".to_owned(),
                "2026-12-01 12:00:00.0 +00:00:00".to_owned()
            ),
            (
                "first".to_owned(),
                "2026-12-01 12:00:00.12345 +00:00:00".to_owned()
            ),
            (
                "second".to_owned(),
                "2026-12-01 12:00:00.123451 +00:00:00".to_owned()
            ),
            (
                "third".to_owned(),
                "2026-12-01 12:00:00.5 +00:00:00".to_owned()
            ),
        ]
    );
}
