//! Backend integration tests: the real app on real sockets (port 0), one fresh database per test.
//! PostgreSQL tests need `DATABASE_URL`; without it they are skipped with a message, and with `CI` set
//! they fail instead.

// Test code: a panic (unwrap) is the failure report; helpers are `pub` for sibling modules.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod conditional;
mod helpers;
mod paging;
mod store_contract;
mod todos;
mod users;
mod versions;
