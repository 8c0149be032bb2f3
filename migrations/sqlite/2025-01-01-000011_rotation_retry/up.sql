-- The retry rule (API.md, "Lost responses"): a replay of the parent token
-- from the network and user-agent family of the request that rotated it is
-- a client retrying after a lost answer. The user agent of that request is
-- `rotated_by`; its client IP is stored here. Existing sessions take the IP
-- of their last use, which is that of their last rotation or login (a
-- grace replay never changes it).
ALTER TABLE sessions ADD COLUMN rotated_ip TEXT;
UPDATE sessions SET rotated_ip = last_ip;

-- A retry is a success: it is not counted among the failures of an hour.
DROP TRIGGER refresh_audit_failures_add;
CREATE TRIGGER refresh_audit_failures_add AFTER INSERT ON refresh_audit
    WHEN NEW.user_id <> '' AND NEW.on_session = 0
     AND NEW.outcome <> 'success' AND NEW.outcome <> 'grace_replay'
     AND NEW.outcome <> 'anomaly_logged' AND NEW.outcome <> 'retry'
BEGIN
    INSERT INTO refresh_audit_failures (user_id, hour_start, failures)
    VALUES (NEW.user_id, NEW.at - NEW.at % 3600000, 1)
    ON CONFLICT (user_id, hour_start) DO UPDATE SET failures = failures + 1;
END;
