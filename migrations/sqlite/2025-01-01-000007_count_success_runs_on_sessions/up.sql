-- Runs of successful refreshes, counted on the session row. A refresh
-- already rewrites its session; counting its success there costs the
-- refresh no statement and no page beyond its audit row, where the
-- trigger on `refresh_audit` would upsert a daily row every time.
--
-- A run is the successes of one session on one UTC day (that of
-- `run_first_at`) from one IP and user agent ('' when absent, as in
-- `refresh_audit_daily`). The rotation
-- counts a success into the session's run and marks its audit row
-- `on_session`, which the daily trigger then skips. When a success starts
-- a new run (another day, IP or user agent), or the session row is
-- deleted, the triggers below move the old run into `refresh_audit_daily`.
-- So the daily rows plus the open runs always count every audit row;
-- the analysis reads both.
ALTER TABLE sessions ADD COLUMN run_ip TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN run_user_agent TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN run_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN run_first_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN run_last_at INTEGER NOT NULL DEFAULT 0;

-- 0 or 1 (a Diesel `Bool`).
ALTER TABLE refresh_audit ADD COLUMN on_session INTEGER NOT NULL DEFAULT 0;

DROP TRIGGER refresh_audit_daily_add;
CREATE TRIGGER refresh_audit_daily_add AFTER INSERT ON refresh_audit
    WHEN NEW.user_id <> '' AND NEW.on_session = 0
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

-- The same rule as in 000004, without `NOT IN (…)`: SQLite builds an
-- ephemeral table for an IN list on every execution of the statement.
DROP TRIGGER refresh_audit_failures_add;
CREATE TRIGGER refresh_audit_failures_add AFTER INSERT ON refresh_audit
    WHEN NEW.user_id <> '' AND NEW.on_session = 0
     AND NEW.outcome <> 'success' AND NEW.outcome <> 'grace_replay'
     AND NEW.outcome <> 'anomaly_logged'
BEGIN
    INSERT INTO refresh_audit_failures (user_id, hour_start, failures)
    VALUES (NEW.user_id, NEW.at - NEW.at % 3600000, 1)
    ON CONFLICT (user_id, hour_start) DO UPDATE SET failures = failures + 1;
END;

CREATE TRIGGER sessions_run_end AFTER UPDATE OF run_first_at, run_ip, run_user_agent ON sessions
    WHEN OLD.run_attempts > 0
     AND (OLD.run_first_at - OLD.run_first_at % 86400000
              <> NEW.run_first_at - NEW.run_first_at % 86400000
          OR OLD.run_ip <> NEW.run_ip OR OLD.run_user_agent <> NEW.run_user_agent)
BEGIN
    INSERT INTO refresh_audit_daily
        (user_id, day_start, outcome, session_id, ip, user_agent, attempts, first_at, last_at)
    VALUES
        (OLD.user_id, OLD.run_first_at - OLD.run_first_at % 86400000, 'success', OLD.id, OLD.run_ip, OLD.run_user_agent,
         OLD.run_attempts, OLD.run_first_at, OLD.run_last_at)
    ON CONFLICT (user_id, day_start, outcome, session_id, ip, user_agent) DO UPDATE SET
        attempts = attempts + excluded.attempts,
        first_at = MIN(first_at, excluded.first_at),
        last_at  = MAX(last_at, excluded.last_at);
END;

CREATE TRIGGER sessions_run_flush AFTER DELETE ON sessions
    WHEN OLD.run_attempts > 0
BEGIN
    INSERT INTO refresh_audit_daily
        (user_id, day_start, outcome, session_id, ip, user_agent, attempts, first_at, last_at)
    VALUES
        (OLD.user_id, OLD.run_first_at - OLD.run_first_at % 86400000, 'success', OLD.id, OLD.run_ip, OLD.run_user_agent,
         OLD.run_attempts, OLD.run_first_at, OLD.run_last_at)
    ON CONFLICT (user_id, day_start, outcome, session_id, ip, user_agent) DO UPDATE SET
        attempts = attempts + excluded.attempts,
        first_at = MIN(first_at, excluded.first_at),
        last_at  = MAX(last_at, excluded.last_at);
END;
