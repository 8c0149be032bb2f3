-- Refreshes refused by TOKENWARDEN_REFRESH_FAIL_RATE_IP are audited as one
-- row per client IP and minute (outcome `rate_limited`) whose `count` says
-- how many requests it stands for; every other row stands for one.
ALTER TABLE refresh_audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1 CHECK (count > 0);
