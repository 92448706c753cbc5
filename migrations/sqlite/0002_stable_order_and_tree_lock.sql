-- Order means the same on PostgreSQL and SQLite (store/sql.rs):
-- timestamps were RFC 3339 text with as many fraction digits as needed ("…:00.5Z", "…:00Z"), whose
-- text order is not time order. From now on they are written fixed-width with six fraction digits
-- ("…:00.500000Z"); rewrite the rows written before.
UPDATE users SET created_at =
    substr(created_at, 1, 19) || '.' ||
    substr(CASE WHEN substr(created_at, 20, 1) = '.'
                THEN substr(created_at, 21, length(created_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
WHERE created_at LIKE '____-__-__T__:__:__%Z';

UPDATE categories SET created_at =
    substr(created_at, 1, 19) || '.' ||
    substr(CASE WHEN substr(created_at, 20, 1) = '.'
                THEN substr(created_at, 21, length(created_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
WHERE created_at LIKE '____-__-__T__:__:__%Z';

UPDATE todos SET
    created_at =
        substr(created_at, 1, 19) || '.' ||
        substr(CASE WHEN substr(created_at, 20, 1) = '.'
                    THEN substr(created_at, 21, length(created_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z',
    updated_at =
        substr(updated_at, 1, 19) || '.' ||
        substr(CASE WHEN substr(updated_at, 20, 1) = '.'
                    THEN substr(updated_at, 21, length(updated_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
WHERE created_at LIKE '____-__-__T__:__:__%Z' AND updated_at LIKE '____-__-__T__:__:__%Z';

-- The version of a user's category tree, bumped first by every change of the tree (SQLite has one
-- writer at a time; the bump makes the transaction a writer from its first statement).
ALTER TABLE users ADD COLUMN tree_version INTEGER NOT NULL DEFAULT 0;
