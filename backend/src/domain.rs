//! Validated newtypes and the plain data the store and the HTTP layer exchange.
//!
//! Request input becomes one of these types at the edge (`parse`), so inner code never sees a raw,
//! unchecked string (STYLE.md "parse, don't validate").

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use unicode_normalization::UnicodeNormalization;
use utoipa::ToSchema;
use uuid::Uuid;

pub mod cursor;

pub use cursor::{Cursor, CursorError, SortKey};

// `YYYY-MM-DD` on the wire (time's default would be a tuple).
time::serde::format_description!(iso_date, Date, "[year]-[month]-[day]");

/// Longest accepted email address (RFC 5321 path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Password bounds: 8 is the NIST SP 800-63B minimum; 256 bounds the hashing work a request can ask for.
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 256;
/// Titles and names are single lines meant for a list view.
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
pub const MAX_CATEGORY_NAME_CHARS: usize = 100;

/// A normalised email: NFKC, trimmed, lower-case (the same key the proxy throttles on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let s: String = raw.nfkc().collect::<String>().trim().to_lowercase();
        if s.is_empty() {
            return Err("must not be empty");
        }
        if s.chars().count() > MAX_EMAIL_CHARS {
            return Err("is too long");
        }
        let Some((local, domain)) = s.split_once('@') else {
            return Err("is not an email address");
        };
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
        if local.is_empty()
            || local.len() > 64
            || !domain_ok
            || s.chars().any(|c| c.is_whitespace() || c.is_control())
            || domain.contains('@')
        {
            return Err("is not an email address");
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as submitted; checked for length only (NIST SP 800-63B: no composition rules).
pub struct Password(String);

impl Password {
    pub fn parse(raw: String) -> Result<Self, &'static str> {
        let n = raw.chars().count();
        if n < MIN_PASSWORD_CHARS {
            return Err("must be at least 8 characters");
        }
        if n > MAX_PASSWORD_CHARS {
            return Err("must be at most 256 characters");
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// One line of text: at most `max` characters as sent (the documented `maxLength`), at least one of
/// them visible, none a control character; stored trimmed.
fn single_line(raw: &str, max: usize) -> Result<String, &'static str> {
    if raw.chars().count() > max {
        return Err("is too long");
    }
    let s = raw.trim();
    if s.is_empty() {
        return Err("must not be empty");
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(s.to_owned())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TodoTitle(String);

impl TodoTitle {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        single_line(raw, MAX_TITLE_CHARS).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TodoDescription(String);

impl TodoDescription {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err("is too long");
        }
        // Multi-line text is fine; NUL is not text, and PostgreSQL cannot store it in a TEXT
        // column (an insert would fail with a database error instead of this clear refusal).
        if raw.contains('\0') {
            return Err("must not contain NUL (U+0000)");
        }
        Ok(Self(raw.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryName(String);

impl CategoryName {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        single_line(raw, MAX_CATEGORY_NAME_CHARS).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub roles: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// What the credential check needs; never leaves the backend.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub roles: Vec<String>,
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Todo {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub completed: bool,
    pub category_id: Option<Uuid>,
    /// Calendar date, `YYYY-MM-DD` (`due_date` before API version 2026-12-01).
    #[schema(value_type = Option<String>, format = Date)]
    #[serde(rename = "due_on", with = "iso_date::option")]
    pub due_date: Option<Date>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewTodo {
    pub title: TodoTitle,
    pub description: TodoDescription,
    pub completed: bool,
    pub category_id: Option<Uuid>,
    pub due_date: Option<Date>,
}

/// A partial update; `Some(None)` clears a nullable field.
#[derive(Debug, Clone, Default)]
pub struct TodoPatch {
    pub title: Option<TodoTitle>,
    pub description: Option<TodoDescription>,
    pub completed: Option<bool>,
    pub category_id: Option<Option<Uuid>>,
    pub due_date: Option<Option<Date>>,
}

impl TodoPatch {
    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.description.is_none()
            && self.completed.is_none()
            && self.category_id.is_none()
            && self.due_date.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum TodoSort {
    #[default]
    CreatedAt,
    /// By due date (`due_date` before API version 2026-12-01).
    #[serde(rename = "due_on")]
    DueDate,
    Title,
}

impl TodoSort {
    /// The `ORDER BY` terms of this sort for an offset read (deprecated paging); a fixed list, never
    /// user text in SQL. Every order ends with the id, so pages are stable; todos without a due date
    /// come last in both directions; titles compare case-insensitively (`title_key`, the database's
    /// `lower(title)`), then exactly (see `store/sql.rs` for why this means the same on both
    /// databases). Keyset reads use the same order, split for the due date (`store/sql.rs`).
    pub fn order_by(self, order: SortOrder) -> &'static str {
        match (self, order) {
            (Self::CreatedAt, SortOrder::Asc) => "created_at ASC, id ASC",
            (Self::CreatedAt, SortOrder::Desc) => "created_at DESC, id DESC",
            (Self::DueDate, SortOrder::Asc) => "(due_date IS NULL) ASC, due_date ASC, id ASC",
            (Self::DueDate, SortOrder::Desc) => "(due_date IS NULL) ASC, due_date DESC, id DESC",
            (Self::Title, SortOrder::Asc) => "title_key ASC, title ASC, id ASC",
            (Self::Title, SortOrder::Desc) => "title_key DESC, title DESC, id DESC",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    #[default]
    Asc,
    Desc,
}

/// Which category a todo list is filtered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CategoryFilter {
    In(Uuid),
    Uncategorised,
}

#[derive(Debug, Clone, Default)]
pub struct TodoFilter {
    pub completed: Option<bool>,
    pub category: Option<CategoryFilter>,
    pub due_before: Option<Date>,
    pub due_after: Option<Date>,
    pub sort: TodoSort,
    pub order: SortOrder,
    pub limit: u32,
    pub start: PageStart,
    /// Whether the answer carries the number of matching todos over all pages.
    pub count: bool,
}

/// Where a page starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PageStart {
    #[default]
    First,
    /// Right after the todo a cursor names, in the cursor's sort order.
    After(Cursor),
    /// After skipping this many todos: deprecated, it costs in proportion to the offset.
    Offset(u32),
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
    /// The number of matching todos over all pages, when asked for.
    pub total: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Category {
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A category with its subcategories, as `GET /categories` returns them.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CategoryNode {
    pub id: Uuid,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[schema(no_recursion)]
    pub children: Vec<CategoryNode>,
}

/// Builds the forest from a flat list; children are ordered by name, then id.
pub fn category_tree(mut flat: Vec<Category>) -> Vec<CategoryNode> {
    flat.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    let mut by_parent: std::collections::HashMap<Option<Uuid>, Vec<Category>> =
        std::collections::HashMap::new();
    for c in flat {
        by_parent.entry(c.parent_id).or_default().push(c);
    }
    fn build(
        parent: Option<Uuid>,
        by_parent: &mut std::collections::HashMap<Option<Uuid>, Vec<Category>>,
    ) -> Vec<CategoryNode> {
        let Some(children) = by_parent.remove(&parent) else {
            return Vec::new();
        };
        children
            .into_iter()
            .map(|c| CategoryNode {
                id: c.id,
                name: c.name,
                created_at: c.created_at,
                children: build(Some(c.id), by_parent),
            })
            .collect()
    }
    build(None, &mut by_parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_for_one_account_key() {
        for raw in [
            "Alice@Example.com",
            "  alice@example.com ",
            "ALICE@EXAMPLE.COM",
            "ａｌｉｃｅ@example.com",
        ] {
            assert_eq!(
                Email::parse(raw).unwrap().as_str(),
                "alice@example.com",
                "{raw}"
            );
        }
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for raw in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a b@example.com",
            "a@b@example.com",
            "alice@.example.com",
            "alice@example..com",
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?} was accepted");
        }
    }

    #[test]
    fn passwords_are_bounded_in_characters() {
        assert!(Password::parse("1234567".into()).is_err());
        assert!(Password::parse("12345678".into()).is_ok());
        assert!(Password::parse("é".repeat(256)).is_ok());
        assert!(Password::parse("x".repeat(257)).is_err());
    }

    #[test]
    fn descriptions_may_span_lines_but_hold_no_nul() {
        assert!(TodoDescription::parse("line one\nline two\ttab").is_ok());
        assert!(TodoDescription::parse("a\0b").is_err());
    }

    #[test]
    fn titles_must_be_a_non_empty_single_line() {
        assert!(TodoTitle::parse("  ").is_err());
        assert!(TodoTitle::parse("a\nb").is_err());
        assert_eq!(TodoTitle::parse(" buy milk ").unwrap().as_str(), "buy milk");
        assert!(TodoTitle::parse(&"x".repeat(201)).is_err());
    }

    #[test]
    fn category_tree_nests_children_under_their_parent() {
        let t = OffsetDateTime::UNIX_EPOCH;
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let flat = vec![
            Category {
                id: c,
                parent_id: Some(b),
                name: "c".into(),
                created_at: t,
            },
            Category {
                id: a,
                parent_id: None,
                name: "a".into(),
                created_at: t,
            },
            Category {
                id: b,
                parent_id: Some(a),
                name: "b".into(),
                created_at: t,
            },
        ];
        let tree = category_tree(flat);
        assert_eq!(tree.len(), 1);
        assert_eq!(tree[0].id, a);
        assert_eq!(tree[0].children[0].id, b);
        assert_eq!(tree[0].children[0].children[0].id, c);
    }
}
