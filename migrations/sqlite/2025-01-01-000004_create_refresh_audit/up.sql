-- One row per request to POST /auth/refresh, whatever its outcome, written
-- before the response leaves (inside the rotation's transaction when the
-- request got that far). Never a token, a cookie or a password: a presented
-- token is only remembered by an 8-hex-digit fingerprint. No foreign keys:
-- the trail outlives the sessions (and tokens) it mentions.
--
-- Clustered by user and time (WITHOUT ROWID): a user's log is one range of
-- the table, and a refresh writes one page of it, not a table page plus an
-- index page (each page a transaction touches costs a WAL frame at commit).
-- `id` orders the rows of one user within one millisecond (assigned as
-- MAX + 1 inside the writing transaction, which holds the write lock).
-- Retention cleanup deletes per user: `WHERE user_id = ? AND at < ?`.
CREATE TABLE refresh_audit (
    user_id     TEXT    NOT NULL, -- '' when no user is known
    at          INTEGER NOT NULL,
    id          INTEGER NOT NULL,
    outcome     TEXT    NOT NULL,
    session_id  TEXT,
    ip          TEXT,
    user_agent  TEXT CHECK (length(CAST(user_agent AS BLOB)) <= 512),
    fingerprint TEXT CHECK (length(fingerprint) = 8),
    PRIMARY KEY (user_id, at, id)
) STRICT, WITHOUT ROWID;

-- The trail of each user aggregated by UTC day and by what was seen, and
-- the failures of each user by hour, kept in step by the triggers below:
-- the token analysis reads these tables and never the raw rows, so that
-- 100 000 attempts in a window cost the distinct (outcome, session, IP, user
-- agent) combinations per day, not 100 000 rows. Absent values are '' so
-- that they take part in the primary key.
CREATE TABLE refresh_audit_daily (
    user_id    TEXT    NOT NULL,
    day_start  INTEGER NOT NULL,
    outcome    TEXT    NOT NULL,
    session_id TEXT    NOT NULL,
    ip         TEXT    NOT NULL,
    user_agent TEXT    NOT NULL,
    attempts   INTEGER NOT NULL CHECK (attempts > 0),
    first_at   INTEGER NOT NULL,
    last_at    INTEGER NOT NULL,
    PRIMARY KEY (user_id, day_start, outcome, session_id, ip, user_agent)
) STRICT, WITHOUT ROWID;

-- Failed attempts per user and clock hour: bursts of failures.
CREATE TABLE refresh_audit_failures (
    user_id    TEXT    NOT NULL,
    hour_start INTEGER NOT NULL,
    failures   INTEGER NOT NULL CHECK (failures > 0),
    PRIMARY KEY (user_id, hour_start)
) STRICT, WITHOUT ROWID;

-- Attempts no user is known for (no token, garbage) belong to no analysis.
CREATE TRIGGER refresh_audit_daily_add AFTER INSERT ON refresh_audit
    WHEN NEW.user_id <> ''
BEGIN
    INSERT INTO refresh_audit_daily
        (user_id, day_start, outcome, session_id, ip, user_agent, attempts, first_at, last_at)
    VALUES
        (NEW.user_id, NEW.at - NEW.at % 86400000, NEW.outcome, COALESCE(NEW.session_id, ''),
         COALESCE(NEW.ip, ''), COALESCE(NEW.user_agent, ''), 1, NEW.at, NEW.at)
    ON CONFLICT (user_id, day_start, outcome, session_id, ip, user_agent) DO UPDATE SET
        attempts = attempts + 1,
        first_at = MIN(first_at, excluded.first_at),
        last_at  = MAX(last_at, excluded.last_at);
END;

CREATE TRIGGER refresh_audit_failures_add AFTER INSERT ON refresh_audit
    WHEN NEW.user_id <> ''
     AND NEW.outcome NOT IN ('success', 'grace_replay', 'anomaly_logged')
BEGIN
    INSERT INTO refresh_audit_failures (user_id, hour_start, failures)
    VALUES (NEW.user_id, NEW.at - NEW.at % 3600000, 1)
    ON CONFLICT (user_id, hour_start) DO UPDATE SET failures = failures + 1;
END;
