//! Backend integration tests: the real app on real sockets (port 0), one fresh database per test.
//! PostgreSQL tests need `DATABASE_URL`; without it they are skipped with a message, and with `CI` set
//! they fail instead.

mod helpers;
mod store_contract;
mod todos;
mod users;
