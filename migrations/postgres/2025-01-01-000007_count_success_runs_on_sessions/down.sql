-- The open runs into the daily rows, then the trigger of 000004 back.
INSERT INTO refresh_audit_daily
    (user_id, day_start, outcome, session_id, ip, user_agent, attempts, first_at, last_at)
SELECT user_id, run_first_at - run_first_at % 86400000, 'success', id, run_ip, run_user_agent,
       run_attempts, run_first_at, run_last_at
FROM sessions WHERE run_attempts > 0
ON CONFLICT (user_id, day_start, outcome, session_id, ip, user_agent) DO UPDATE SET
    attempts = refresh_audit_daily.attempts + EXCLUDED.attempts,
    first_at = LEAST(refresh_audit_daily.first_at, EXCLUDED.first_at),
    last_at  = GREATEST(refresh_audit_daily.last_at, EXCLUDED.last_at);

DROP TRIGGER sessions_run_flush ON sessions;
DROP TRIGGER sessions_run_end ON sessions;
DROP FUNCTION sessions_run_flush();

DROP TRIGGER refresh_audit_aggregate ON refresh_audit;
CREATE TRIGGER refresh_audit_aggregate AFTER INSERT ON refresh_audit
    FOR EACH ROW WHEN (NEW.user_id <> '')
    EXECUTE FUNCTION refresh_audit_aggregate();

ALTER TABLE refresh_audit DROP COLUMN on_session;

ALTER TABLE sessions
    DROP COLUMN run_last_at,
    DROP COLUMN run_first_at,
    DROP COLUMN run_attempts,
    DROP COLUMN run_user_agent,
    DROP COLUMN run_ip;
