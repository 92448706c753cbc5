//! One contract suite for every `Store` implementation: SQLite always, PostgreSQL with `DATABASE_URL`.

use std::sync::Arc;

use time::macros::date;
use todo_backend::domain::{
    CategoryFilter, CategoryName, Email, NewTodo, SortOrder, TodoDescription, TodoFilter,
    TodoPatch, TodoSort, TodoTitle,
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
    assert_eq!(page.total, 3);
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
    assert_eq!((done.total, done.items[0].id), (1, t2.id));
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
    assert_eq!((in_cat.total, in_cat.items[0].id), (1, t1.id));
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
    assert_eq!(uncategorised.total, 2);
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
    assert_eq!((due_before.total, due_before.items[0].id), (1, t2.id));
    let page2 = s
        .list_todos(
            alice.id,
            &TodoFilter {
                limit: 2,
                offset: 2,
                ..all()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (page2.total, page2.items.len(), page2.items[0].id),
        (3, 1, t3.id)
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
    assert_eq!(s.list_todos(alice.id, &all()).await.unwrap().total, 3);
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
