-- The open runs into the daily rows, then the trigger of 000004 back.
INSERT INTO refresh_audit_daily
    (user_id, day_start, outcome, session_id, ip, user_agent, attempts, first_at, last_at)
SELECT user_id, run_first_at - run_first_at % 86400000, 'success', id, run_ip, run_user_agent,
       run_attempts, run_first_at, run_last_at
FROM sessions WHERE run_attempts > 0
ON CONFLICT (user_id, day_start, outcome, session_id, ip, user_agent) DO UPDATE SET
    attempts = attempts + excluded.attempts,
    first_at = MIN(first_at, excluded.first_at),
    last_at  = MAX(last_at, excluded.last_at);

DROP TRIGGER sessions_run_flush;
DROP TRIGGER sessions_run_end;

DROP TRIGGER refresh_audit_daily_add;
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

DROP TRIGGER refresh_audit_failures_add;
CREATE TRIGGER refresh_audit_failures_add AFTER INSERT ON refresh_audit
    WHEN NEW.user_id <> ''
     AND NEW.outcome NOT IN ('success', 'grace_replay', 'anomaly_logged')
BEGIN
    INSERT INTO refresh_audit_failures (user_id, hour_start, failures)
    VALUES (NEW.user_id, NEW.at - NEW.at % 3600000, 1)
    ON CONFLICT (user_id, hour_start) DO UPDATE SET failures = failures + 1;
END;

ALTER TABLE refresh_audit DROP COLUMN on_session;

ALTER TABLE sessions DROP COLUMN run_last_at;
ALTER TABLE sessions DROP COLUMN run_first_at;
ALTER TABLE sessions DROP COLUMN run_attempts;
ALTER TABLE sessions DROP COLUMN run_user_agent;
ALTER TABLE sessions DROP COLUMN run_ip;
