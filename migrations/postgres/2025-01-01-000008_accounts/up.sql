-- Accounts: a disabled account keeps its row (disabled_at set, NULL when
-- enabled); the last successful login is recorded for admins to see.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
ALTER TABLE users ADD COLUMN last_login_at BIGINT;

-- Admins list users by username prefix, ordered by `username_key`. Under a
-- linguistic collation (en_US.UTF-8 and the like) `.`, `-` and `_` are
-- ignored at first and a range scan is not a prefix scan; byte order ("C")
-- makes `username_key >= 'al' AND username_key < 'al' || chr(127)` exactly
-- the names starting with "al", served by the unique index (rebuilt here
-- under the new collation). Keys are ASCII lower case, so nothing else
-- changes: uniqueness is the same.
ALTER TABLE users ALTER COLUMN username_key TYPE TEXT COLLATE "C";
