-- Users. Ids are hyphenated UUID text, times are milliseconds since the epoch.
-- `username` is kept as given; `username_key` (lower case) makes it unique
-- regardless of letter case. `roles` is a comma-separated list.
CREATE TABLE users (
    id            TEXT   NOT NULL PRIMARY KEY,
    username      TEXT   NOT NULL,
    username_key  TEXT   NOT NULL,
    password_hash TEXT   NOT NULL,
    roles         TEXT   NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE UNIQUE INDEX users_username_key_unique ON users (username_key);
