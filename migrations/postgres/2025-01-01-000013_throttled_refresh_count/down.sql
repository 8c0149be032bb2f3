ALTER TABLE refresh_audit DROP COLUMN count;
