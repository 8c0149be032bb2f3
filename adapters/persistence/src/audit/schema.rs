//! The audit tables, as Diesel sees them (`migrations/*/…000004…`,
//! `…000005…`). `refresh_audit_hourly` is only read with SQL of its own
//! (see `read.rs`) and only written by a database trigger.

diesel::table! {
    refresh_audit (id) {
        id -> BigInt,
        at -> BigInt,
        outcome -> Text,
        user_id -> Nullable<Text>,
        session_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        fingerprint -> Nullable<Text>,
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
