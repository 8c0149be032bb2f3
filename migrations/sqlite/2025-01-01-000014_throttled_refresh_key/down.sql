DROP INDEX refresh_audit_throttled_key;
ALTER TABLE refresh_audit DROP COLUMN throttle_minute;
