-- Security events (token_reuse, anomaly, admin_revoke, logout_all), each
-- written in the transaction of the revocation it describes. `details` is
-- a JSON object as text. No foreign keys: events outlive the sessions they
-- mention.
CREATE TABLE security_events (
    id         INTEGER PRIMARY KEY,
    user_id    TEXT    NOT NULL,
    session_id TEXT,
    kind       TEXT    NOT NULL,
    details    TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

-- A user's events, newest first, and every user's (keyset on (created_at, id)).
CREATE INDEX security_events_user_id_created_at_idx ON security_events (user_id, created_at, id);
CREATE INDEX security_events_created_at_idx ON security_events (created_at, id);
