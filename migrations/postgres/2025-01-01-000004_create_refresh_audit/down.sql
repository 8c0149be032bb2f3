DROP TRIGGER refresh_audit_aggregate ON refresh_audit;
DROP FUNCTION refresh_audit_aggregate();
DROP TABLE refresh_audit_failures;
DROP TABLE refresh_audit_daily;
DROP TABLE refresh_audit;
