ALTER TABLE users ALTER COLUMN username_key TYPE TEXT COLLATE "default";
ALTER TABLE users DROP COLUMN last_login_at;
ALTER TABLE users DROP COLUMN disabled_at;
