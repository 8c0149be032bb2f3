-- One row per request to POST /auth/refresh, whatever its outcome, written
-- before the response leaves (inside the rotation's transaction when the
-- request got that far). Never a token, a cookie or a password: a presented
-- token is only remembered by an 8-hex-digit fingerprint. No foreign keys:
-- the trail outlives the sessions (and tokens) it mentions.
CREATE TABLE refresh_audit (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     TEXT   NOT NULL, -- '' when no user is known
    at          BIGINT NOT NULL,
    outcome     TEXT   NOT NULL,
    session_id  TEXT,
    ip          TEXT,
    user_agent  TEXT CHECK (octet_length(user_agent) <= 512),
    fingerprint TEXT CHECK (length(fingerprint) = 8)
);

-- A user's refresh log, newest first (keyset pagination on (at, id)).
-- Retention cleanup needs no index of its own: ids grow with time, so the
-- oldest rows come first in the primary key.
CREATE INDEX refresh_audit_user_id_at_idx ON refresh_audit (user_id, at, id);

-- The trail of each user aggregated by UTC day and by what was seen, and
-- the failures of each user by hour, kept in step by the trigger below: the
-- token analysis reads these tables and never the raw rows, so that 100 000
-- attempts in a window cost the distinct (outcome, session, IP, user agent)
-- combinations per day, not 100 000 rows. Absent values are '' so that they
-- take part in the primary key.
CREATE TABLE refresh_audit_daily (
    user_id    TEXT   NOT NULL,
    day_start  BIGINT NOT NULL,
    outcome    TEXT   NOT NULL,
    session_id TEXT   NOT NULL,
    ip         TEXT   NOT NULL,
    user_agent TEXT   NOT NULL,
    attempts   BIGINT NOT NULL CHECK (attempts > 0),
    first_at   BIGINT NOT NULL,
    last_at    BIGINT NOT NULL,
    PRIMARY KEY (user_id, day_start, outcome, session_id, ip, user_agent)
);

-- Failed attempts per user and clock hour: bursts of failures.
CREATE TABLE refresh_audit_failures (
    user_id    TEXT   NOT NULL,
    hour_start BIGINT NOT NULL,
    failures   BIGINT NOT NULL CHECK (failures > 0),
    PRIMARY KEY (user_id, hour_start)
);

CREATE FUNCTION refresh_audit_aggregate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO refresh_audit_daily
        (user_id, day_start, outcome, session_id, ip, user_agent, attempts, first_at, last_at)
    VALUES
        (NEW.user_id, NEW.at - NEW.at % 86400000, NEW.outcome, COALESCE(NEW.session_id, ''),
         COALESCE(NEW.ip, ''), COALESCE(NEW.user_agent, ''), 1, NEW.at, NEW.at)
    ON CONFLICT (user_id, day_start, outcome, session_id, ip, user_agent) DO UPDATE SET
        attempts = refresh_audit_daily.attempts + 1,
        first_at = LEAST(refresh_audit_daily.first_at, EXCLUDED.first_at),
        last_at  = GREATEST(refresh_audit_daily.last_at, EXCLUDED.last_at);
    IF NEW.outcome NOT IN ('success', 'grace_replay', 'anomaly_logged') THEN
        INSERT INTO refresh_audit_failures (user_id, hour_start, failures)
        VALUES (NEW.user_id, NEW.at - NEW.at % 3600000, 1)
        ON CONFLICT (user_id, hour_start) DO UPDATE SET
            failures = refresh_audit_failures.failures + 1;
    END IF;
    RETURN NULL;
END;
$$;

-- Attempts no user is known for (no token, garbage) belong to no analysis.
CREATE TRIGGER refresh_audit_aggregate AFTER INSERT ON refresh_audit
    FOR EACH ROW WHEN (NEW.user_id <> '')
    EXECUTE FUNCTION refresh_audit_aggregate();
