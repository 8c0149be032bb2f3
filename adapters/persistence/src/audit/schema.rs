//! The audit tables, as Diesel sees them (`migrations/*/…000004…`,
//! `…000005…`). The aggregates `refresh_audit_daily` and
//! `refresh_audit_failures` are only read with SQL of their own (see
//! `read.rs`) and only written by database triggers.

diesel::table! {
    refresh_audit (id) {
        id -> BigInt,
        at -> BigInt,
        outcome -> Text,
        /// `''` when no user is known.
        user_id -> Text,
        session_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        fingerprint -> Nullable<Text>,
        /// Counted in its session's run, not by the daily trigger.
        on_session -> Bool,
        /// How many requests the row stands for: 1, except for the row of
        /// throttled refreshes of one IP and minute (`…000013…`; its key
        /// `(ip, throttle_minute)`, `…000014…`, is only written by SQL of
        /// its own in `write.rs`).
        count -> BigInt,
    }
}

diesel::table! {
    security_events (id) {
        id -> BigInt,
        user_id -> Text,
        session_id -> Nullable<Text>,
        kind -> Text,
        details -> Text,
        created_at -> BigInt,
    }
}
