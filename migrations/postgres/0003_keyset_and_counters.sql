-- Pages cost the same however many todos a user has (store/sql.rs, "Lists"):
-- * per-user counters kept in the same transaction as every insert, delete and completion change,
--   so a total is one row read, never a count over the user's todos;
-- * a version of the user's todo data, bumped first by every todo write: it takes the user's row
--   lock before anything is read (writes of one user's todos run in one order, no deadlock), and it
--   is what an ETag will name;
-- * an index for every sort order, so a page is a range read of `limit + 1` index entries.
ALTER TABLE users ADD COLUMN todo_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN completed_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN data_version BIGINT NOT NULL DEFAULT 0;
UPDATE users SET
    todo_count = (SELECT COUNT(*) FROM todos WHERE todos.user_id = users.id),
    completed_count = (SELECT COUNT(*) FROM todos WHERE todos.user_id = users.id AND todos.completed);

-- The title order's first key, as a column (the same on SQLite, where it has to be one).
ALTER TABLE todos ADD COLUMN title_key TEXT COLLATE "C" GENERATED ALWAYS AS (lower(title)) STORED;

CREATE INDEX todos_user_title ON todos (user_id, title_key, title, id);
CREATE INDEX todos_user_due ON todos (user_id, due_date, id);
CREATE INDEX todos_user_completed ON todos (user_id, completed, created_at, id);
DROP INDEX todos_user_category;
CREATE INDEX todos_user_category ON todos (user_id, category_id, created_at, id);
