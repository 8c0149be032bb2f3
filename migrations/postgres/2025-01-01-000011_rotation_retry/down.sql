CREATE OR REPLACE FUNCTION refresh_audit_aggregate() RETURNS trigger LANGUAGE plpgsql AS $$
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

ALTER TABLE sessions DROP COLUMN rotated_ip;
