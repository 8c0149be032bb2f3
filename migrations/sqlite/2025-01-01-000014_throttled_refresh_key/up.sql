-- The `rate_limited` row of a client IP and minute is one row whatever the
-- number of instances: each adds its count to it with an upsert on this
-- key (`ON CONFLICT (ip, throttle_minute) … DO UPDATE SET count = count +
-- excluded.count`). `throttle_minute` is the row's minute (`at / 60000`),
-- set on `rate_limited` rows only; older rows keep NULL and stay as they are.
ALTER TABLE refresh_audit ADD COLUMN throttle_minute INTEGER;
CREATE UNIQUE INDEX refresh_audit_throttled_key ON refresh_audit (ip, throttle_minute)
    WHERE throttle_minute IS NOT NULL;
