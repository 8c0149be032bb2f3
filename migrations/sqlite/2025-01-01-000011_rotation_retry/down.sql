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

ALTER TABLE sessions DROP COLUMN rotated_ip;
