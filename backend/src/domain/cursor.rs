//! The opaque `cursor` of `GET /todos`: where the next page starts, as the sort key and the id of
//! the last todo of the page before (keyset pagination). A page read is then a range read of
//! `limit + 1` index entries from that point, whatever the page number, and it neither skips nor
//! repeats a todo when others are inserted or deleted between the pages.
//!
//! On the wire a cursor is base64url (no padding) of a small JSON object. It is not secret and not
//! signed: whatever a client writes into one, the read stays scoped to the caller's own todos, so a
//! forged cursor can only choose where the caller's own list starts. It is validated strictly all
//! the same (unknown fields, a missing key, another sort order: `422` on the `cursor` field).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{SortOrder, Todo, TodoSort};

/// The longest cursor accepted: a title sort key holds the title twice (folded and as written),
/// at most 200 characters of up to 4 bytes each, and base64 adds a third.
pub const MAX_CURSOR_LEN: usize = 4096;

/// The sort key of the last todo of a page, in the sort order the page was read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    Created(OffsetDateTime),
    /// `None`: the page ended among the todos without a due date, which come last in both orders.
    Due(Option<Date>),
    /// `folded` is the title as the column `title_key` holds it (`lower(title)`, ASCII letters
    /// only, not Rust's Unicode lower-casing): the cursor must compare as the index does.
    Title {
        folded: String,
        title: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub sort: TodoSort,
    pub order: SortOrder,
    pub key: SortKey,
    pub id: Uuid,
}

/// Why a cursor was refused; the message is what the client reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("is not a cursor this API returned")]
    Malformed,
    #[error(
        "belongs to another sort order: pass the same sort and order as the page it came from"
    )]
    OtherOrder,
}

/// The JSON inside the base64: one key field set, the one the sort needs.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u8,
    s: TodoSort,
    o: SortOrder,
    /// Created: microseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<i64>,
    /// Due date sort: the date, or `null` among the todos without one (so present either way).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    due: Option<Option<String>>,
    /// Title sort: the folded title and the title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    title: Option<(String, String)>,
    id: Uuid,
}

/// `"due": null` is `Some(None)`, an absent `due` is `None` (serde alone reads both as `None`).
fn present<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(de).map(Some)
}

const DATE: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

impl Cursor {
    /// The cursor of a page, read in `sort` and `order`, that ends with `todo`.
    pub fn after(todo: &Todo, sort: TodoSort, order: SortOrder) -> Self {
        let key = match sort {
            TodoSort::CreatedAt => SortKey::Created(todo.created_at),
            TodoSort::DueDate => SortKey::Due(todo.due_date),
            // `title_key` is `lower(title)`, which folds ASCII letters only on both databases
            // (SQLite's built-in `lower()`; PostgreSQL's under `COLLATE "C"`): the same fold as
            // this, without reading the column for every row of the page.
            TodoSort::Title => SortKey::Title {
                folded: todo.title.to_ascii_lowercase(),
                title: todo.title.clone(),
            },
        };
        Self {
            sort,
            order,
            key,
            id: todo.id,
        }
    }

    pub fn encode(&self) -> String {
        let mut wire = Wire {
            v: 1,
            s: self.sort,
            o: self.order,
            at: None,
            due: None,
            title: None,
            id: self.id,
        };
        match &self.key {
            SortKey::Created(t) => {
                wire.at = Some(i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX));
            }
            SortKey::Due(d) => {
                wire.due = Some(d.and_then(|d| d.format(DATE).ok()));
            }
            SortKey::Title { folded, title } => wire.title = Some((folded.clone(), title.clone())),
        }
        // Serialising a struct of strings and numbers cannot fail.
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Parses a cursor for a read in `sort` and `order`.
    pub fn decode(raw: &str, sort: TodoSort, order: SortOrder) -> Result<Self, CursorError> {
        if raw.is_empty() || raw.len() > MAX_CURSOR_LEN {
            return Err(CursorError::Malformed);
        }
        let json = URL_SAFE_NO_PAD
            .decode(raw)
            .map_err(|_| CursorError::Malformed)?;
        let wire: Wire = serde_json::from_slice(&json).map_err(|_| CursorError::Malformed)?;
        if wire.v != 1 {
            return Err(CursorError::Malformed);
        }
        let key = match (wire.s, wire.at, wire.due, wire.title) {
            (TodoSort::CreatedAt, Some(at), None, None) => SortKey::Created(
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000)
                    .map_err(|_| CursorError::Malformed)?,
            ),
            (TodoSort::DueDate, None, Some(due), None) => SortKey::Due(match due {
                None => None,
                Some(d) => Some(Date::parse(&d, DATE).map_err(|_| CursorError::Malformed)?),
            }),
            (TodoSort::Title, None, None, Some((folded, title))) => {
                SortKey::Title { folded, title }
            }
            _ => return Err(CursorError::Malformed),
        };
        if (wire.s, wire.o) != (sort, order) {
            return Err(CursorError::OtherOrder);
        }
        Ok(Self {
            sort: wire.s,
            order: wire.o,
            key,
            id: wire.id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Uuid {
        Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef)
    }

    fn all_kinds() -> Vec<Cursor> {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_767_225_600_123_456_000).unwrap();
        let day = Date::from_calendar_date(2026, time::Month::December, 31).unwrap();
        let mut out = Vec::new();
        for order in [SortOrder::Asc, SortOrder::Desc] {
            for (sort, key) in [
                (TodoSort::CreatedAt, SortKey::Created(at)),
                (TodoSort::DueDate, SortKey::Due(Some(day))),
                (TodoSort::DueDate, SortKey::Due(None)),
                (
                    TodoSort::Title,
                    SortKey::Title {
                        folded: "émile | \"x\"".into(),
                        title: "Émile | \"X\"".into(),
                    },
                ),
            ] {
                out.push(Cursor {
                    sort,
                    order,
                    key,
                    id: id(),
                });
            }
        }
        out
    }

    #[test]
    fn every_kind_of_cursor_decodes_to_itself() {
        for c in all_kinds() {
            let raw = c.encode();
            assert!(raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(Cursor::decode(&raw, c.sort, c.order), Ok(c));
        }
    }

    #[test]
    fn a_cursor_is_refused_for_another_sort_or_order() {
        let c = &all_kinds()[0];
        let raw = c.encode();
        assert_eq!(
            Cursor::decode(&raw, TodoSort::Title, c.order),
            Err(CursorError::OtherOrder)
        );
        assert_eq!(
            Cursor::decode(&raw, c.sort, SortOrder::Desc),
            Err(CursorError::OtherOrder)
        );
    }

    #[test]
    fn malformed_cursors_are_refused() {
        let wire = |json: &str| URL_SAFE_NO_PAD.encode(json);
        let uuid = id();
        for raw in [
            String::new(),
            "not base64!".into(),
            "A".repeat(MAX_CURSOR_LEN + 1),
            wire("[]"),
            wire(&format!(
                r#"{{"v":2,"s":"created_at","o":"asc","at":1,"id":"{uuid}"}}"#
            )),
            // The key of another sort, two keys, no key, an unknown field, a bad date.
            wire(&format!(
                r#"{{"v":1,"s":"created_at","o":"asc","due":null,"id":"{uuid}"}}"#
            )),
            wire(&format!(
                r#"{{"v":1,"s":"created_at","o":"asc","at":1,"due":null,"id":"{uuid}"}}"#
            )),
            wire(&format!(r#"{{"v":1,"s":"title","o":"asc","id":"{uuid}"}}"#)),
            wire(&format!(
                r#"{{"v":1,"s":"created_at","o":"asc","at":1,"x":1,"id":"{uuid}"}}"#
            )),
            wire(&format!(
                r#"{{"v":1,"s":"due_date","o":"asc","due":"2026-13-01","id":"{uuid}"}}"#
            )),
            // A time out of range.
            wire(&format!(
                r#"{{"v":1,"s":"created_at","o":"asc","at":9223372036854775807,"id":"{uuid}"}}"#
            )),
        ] {
            assert_eq!(
                Cursor::decode(&raw, TodoSort::CreatedAt, SortOrder::Asc).err(),
                Some(CursorError::Malformed),
                "{raw}"
            );
        }
    }
}
