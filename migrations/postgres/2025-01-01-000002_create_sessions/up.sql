-- Sessions: one refresh-token family per login.
-- `generation` is the generation of the current refresh token; `rotated_at`
-- is when it was issued and `rotated_by` the user agent that received it
-- (the grace window compares against it). `expires_at` is the absolute end.
CREATE TABLE sessions (
    id              TEXT   NOT NULL PRIMARY KEY,
    user_id         TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    generation      BIGINT NOT NULL CHECK (generation >= 0),
    device_name     TEXT,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT NOT NULL,
    rotated_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    revoked_at      BIGINT,
    revoked_reason  TEXT,
    last_ip         TEXT,
    last_user_agent TEXT,
    rotated_by      TEXT,
    CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);

-- A user's sessions, least or most recently used first.
CREATE INDEX sessions_user_id_last_used_at_idx ON sessions (user_id, last_used_at);
-- Cleanup of ended sessions.
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
