DROP TRIGGER refresh_audit_hourly_add;
DROP TABLE refresh_audit_hourly;
DROP TABLE refresh_audit;
