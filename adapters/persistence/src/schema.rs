//! The tables, as Diesel sees them. Kept by hand in step with
//! `migrations/{sqlite,postgres}`: only types both backends share.

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        username_key -> Text,
        password_hash -> Text,
        roles -> Text,
        created_at -> BigInt,
        /// When the account was disabled; NULL while enabled (`…000008…`).
        disabled_at -> Nullable<BigInt>,
        last_login_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        generation -> BigInt,
        device_name -> Nullable<Text>,
        created_at -> BigInt,
        last_used_at -> BigInt,
        rotated_at -> BigInt,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        revoked_reason -> Nullable<Text>,
        last_ip -> Nullable<Text>,
        last_user_agent -> Nullable<Text>,
        rotated_by -> Nullable<Text>,
        /// The open run of successes (migration `…000007…`).
        run_ip -> Text,
        run_user_agent -> Text,
        run_attempts -> BigInt,
        run_first_at -> BigInt,
        run_last_at -> BigInt,
        /// The DPoP key thumbprint the session is bound to (`…000009…`).
        dpop_jkt -> Nullable<Text>,
        /// The client IP of the request that issued the current token
        /// (`…000011…`).
        rotated_ip -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (digest) {
        digest -> Text,
        session_id -> Text,
        generation -> BigInt,
        issued_at -> BigInt,
        used_at -> Nullable<BigInt>,
        expires_at -> BigInt,
    }
}

diesel::table! {
    revocations (key) {
        key -> Text,
        expires_at -> BigInt,
        created_at -> BigInt,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::allow_tables_to_appear_in_same_query!(users, sessions, refresh_tokens);

diesel::table! {
    /// Accepted DPoP proof ids (migration `…000009…`).
    dpop_proofs (key) {
        key -> Text,
        expires_at -> BigInt,
    }
}
