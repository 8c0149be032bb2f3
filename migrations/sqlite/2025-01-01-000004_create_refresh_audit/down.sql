DROP TRIGGER refresh_audit_failures_add;
DROP TRIGGER refresh_audit_daily_add;
DROP TABLE refresh_audit_failures;
DROP TABLE refresh_audit_daily;
DROP TABLE refresh_audit;
