-- One row that readiness checks and `serve`'s start-up rewrite: proof that
-- the database can be written right now (not full, not read-only, still
-- connected), which a `SELECT 1` cannot give.
CREATE TABLE write_probe (
    id INTEGER PRIMARY KEY,
    checked_at BIGINT NOT NULL
);
INSERT INTO write_probe (id, checked_at) VALUES (1, 0);
