-- Accounts: a disabled account keeps its row (disabled_at set, NULL when
-- enabled); the last successful login is recorded for admins to see.
-- Listing by username prefix is a range scan of the unique index on
-- `username_key` (SQLite compares text bytewise, keys are lower-case ASCII).
ALTER TABLE users ADD COLUMN disabled_at INTEGER;
ALTER TABLE users ADD COLUMN last_login_at INTEGER;
