-- Refresh tokens, stored only as the lower-case hex SHA-256 of the token.
-- Rotated tokens stay (with `used_at` set) until the session's absolute end
-- (`expires_at`), so that a replay is recognised as reuse.
CREATE TABLE refresh_tokens (
    digest     TEXT    NOT NULL PRIMARY KEY CHECK (length(digest) = 64),
    session_id TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    generation INTEGER NOT NULL CHECK (generation >= 0),
    issued_at  INTEGER NOT NULL,
    used_at    INTEGER,
    expires_at INTEGER NOT NULL
) STRICT;

-- One token per generation of a session: a second successor of the same
-- token can never be stored. Also serves lookups by session.
CREATE UNIQUE INDEX refresh_tokens_session_id_generation_unique
    ON refresh_tokens (session_id, generation);
-- Cleanup of expired tokens.
CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);
