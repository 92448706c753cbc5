-- Order means the same on PostgreSQL and SQLite (store/sql.rs):
-- titles and category names compare by code point, as SQLite's BINARY collation does, whatever the
-- cluster's default collation; under "C", lower() folds ASCII letters only, as SQLite's lower() does.
ALTER TABLE todos ALTER COLUMN title TYPE TEXT COLLATE "C";
ALTER TABLE categories ALTER COLUMN name TYPE TEXT COLLATE "C";

-- The version of a user's category tree. Every change of the tree bumps it first, which takes the
-- user's row lock: two concurrent moves of one user's categories run one after the other, so both
-- cannot pass the cycle check.
ALTER TABLE users ADD COLUMN tree_version BIGINT NOT NULL DEFAULT 0;
