DROP INDEX sessions_expires_at_idx;
DROP INDEX sessions_user_id_last_used_at_idx;
DROP TABLE sessions;
