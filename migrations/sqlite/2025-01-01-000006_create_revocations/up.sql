-- The revocation list: revoked sessions (`session:<uuid>`) and revoked
-- access-token ids (`jti:<uuid>`). An entry is in force until `expires_at`,
-- when every token it covers has expired by itself; the cleanup job deletes
-- it after that. `created_at` is when it was (last) recorded: instances poll
-- for entries newer than what they have seen.
CREATE TABLE revocations (
    key        TEXT   NOT NULL PRIMARY KEY CHECK (length(key) <= 64),
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

-- Polling for new entries.
CREATE INDEX revocations_created_at_idx ON revocations (created_at);
-- Cleanup of expired entries.
CREATE INDEX revocations_expires_at_idx ON revocations (expires_at);
