-- The webhook outbox: one row per security event still to be POSTed to
-- TOKENWARDEN_WEBHOOK_URL, written in the transaction of the event itself
-- (so an event that exists is an event that will be delivered, crash or
-- not). A row leaves when its delivery is acknowledged with a 2xx or
-- abandoned (24 h after the event); see docs/webhooks.md.
--
-- `next_attempt_at` (epoch ms) is both the retry schedule and the lease: an
-- instance that claims a row moves it to the end of its lease and bumps
-- `attempts`, so no other instance sends it meanwhile; an instance that
-- died holding it lets it fall due again when the lease ends. `attempts`
-- also names the claim: a late result of an expired claim changes nothing.
CREATE TABLE webhook_outbox (
    event_id        INTEGER PRIMARY KEY,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT
) STRICT;

CREATE INDEX webhook_outbox_next_attempt_at_idx ON webhook_outbox (next_attempt_at);
