//! Fuzzes the list cursor parser (`todo_backend::domain::Cursor::decode`), which reads the `cursor`
//! query parameter of `GET /todos`: any string, for any sort and order, is either refused with a
//! `CursorError` or parsed to a cursor that encodes back to a string parsing to the same cursor.

#![no_main]

use libfuzzer_sys::fuzz_target;
use todo_backend::domain::{Cursor, SortOrder, TodoSort};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    for sort in [TodoSort::CreatedAt, TodoSort::DueDate, TodoSort::Title] {
        for order in [SortOrder::Asc, SortOrder::Desc] {
            if let Ok(c) = Cursor::decode(raw, sort, order) {
                assert_eq!((c.sort, c.order), (sort, order));
                let again = Cursor::decode(&c.encode(), sort, order);
                assert_eq!(again.as_ref(), Ok(&c), "{raw}");
            }
        }
    }
});
