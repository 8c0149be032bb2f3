-- DPoP (RFC 9449). A session bound at login to the proof key with this
-- RFC 7638 thumbprint needs a proof by that key on every refresh.
ALTER TABLE sessions ADD COLUMN dpop_jkt TEXT CHECK (length(dpop_jkt) = 43);

-- Proof ids (`jti`) already accepted, keyed by a SHA-256 of the proof key's
-- thumbprint and the `jti`, so that one client's ids cannot block another's.
-- A row is kept until no proof with that `jti` could be accepted any more
-- (`iat` + max age + clock leeway); the cleanup job deletes it after that.
CREATE TABLE dpop_proofs (
    key        TEXT   NOT NULL PRIMARY KEY CHECK (length(key) = 64),
    expires_at BIGINT NOT NULL
);

CREATE INDEX dpop_proofs_expires_at_idx ON dpop_proofs (expires_at);
