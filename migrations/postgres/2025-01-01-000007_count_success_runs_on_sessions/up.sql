-- Runs of successful refreshes, counted on the session row. A refresh
-- already rewrites its session; counting its success there costs the
-- refresh no statement and no trigger call beyond its audit row, where the
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
ALTER TABLE sessions
    ADD COLUMN run_ip TEXT NOT NULL DEFAULT '',
    ADD COLUMN run_user_agent TEXT NOT NULL DEFAULT '',
    ADD COLUMN run_attempts BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN run_first_at BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN run_last_at BIGINT NOT NULL DEFAULT 0;

ALTER TABLE refresh_audit ADD COLUMN on_session BOOLEAN NOT NULL DEFAULT FALSE;

DROP TRIGGER refresh_audit_aggregate ON refresh_audit;
CREATE TRIGGER refresh_audit_aggregate AFTER INSERT ON refresh_audit
    FOR EACH ROW WHEN (NEW.user_id <> '' AND NOT NEW.on_session)
    EXECUTE FUNCTION refresh_audit_aggregate();

CREATE FUNCTION sessions_run_flush() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO refresh_audit_daily
        (user_id, day_start, outcome, session_id, ip, user_agent, attempts, first_at, last_at)
    VALUES
        (OLD.user_id, OLD.run_first_at - OLD.run_first_at % 86400000, 'success', OLD.id, OLD.run_ip, OLD.run_user_agent,
         OLD.run_attempts, OLD.run_first_at, OLD.run_last_at)
    ON CONFLICT (user_id, day_start, outcome, session_id, ip, user_agent) DO UPDATE SET
        attempts = refresh_audit_daily.attempts + EXCLUDED.attempts,
        first_at = LEAST(refresh_audit_daily.first_at, EXCLUDED.first_at),
        last_at  = GREATEST(refresh_audit_daily.last_at, EXCLUDED.last_at);
    RETURN NULL;
END;
$$;

CREATE TRIGGER sessions_run_end AFTER UPDATE OF run_first_at, run_ip, run_user_agent ON sessions
    FOR EACH ROW WHEN (OLD.run_attempts > 0
        AND (OLD.run_first_at - OLD.run_first_at % 86400000, OLD.run_ip, OLD.run_user_agent)
            IS DISTINCT FROM
            (NEW.run_first_at - NEW.run_first_at % 86400000, NEW.run_ip, NEW.run_user_agent))
    EXECUTE FUNCTION sessions_run_flush();

CREATE TRIGGER sessions_run_flush AFTER DELETE ON sessions
    FOR EACH ROW WHEN (OLD.run_attempts > 0)
    EXECUTE FUNCTION sessions_run_flush();
