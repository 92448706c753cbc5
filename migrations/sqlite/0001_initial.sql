-- Users, categories (a tree through parent_id) and todos. Every row that belongs to a user carries
-- user_id so every query can be scoped to the caller (users see only their own rows).
-- Same schema as migrations/postgres/0001_initial.sql: UUIDs are 16-byte blobs and timestamps are
-- RFC 3339 text, as sqlx encodes them for SQLite.
CREATE TABLE users (
    id            BLOB PRIMARY KEY NOT NULL,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    roles         TEXT NOT NULL DEFAULT 'user',
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TEXT NOT NULL
);

CREATE TABLE categories (
    id         BLOB PRIMARY KEY NOT NULL,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    parent_id  BLOB REFERENCES categories (id) ON DELETE RESTRICT,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX categories_user_parent ON categories (user_id, parent_id);

CREATE TABLE todos (
    id          BLOB PRIMARY KEY NOT NULL,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    category_id BLOB REFERENCES categories (id) ON DELETE SET NULL,
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    completed   BOOLEAN NOT NULL DEFAULT FALSE,
    due_date    TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX todos_user_created ON todos (user_id, created_at, id);
CREATE INDEX todos_user_category ON todos (user_id, category_id);
