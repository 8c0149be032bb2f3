#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::AtomicU32;
use std::thread::sleep;

use application::rate_limit::Limit;

use super::*;

const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// `TEST_REDIS_URL`, or `None` (saying why) when it is unset, unless
/// `TOKENWARDEN_TEST_REQUIRE_SERVICES=1` makes that a failure.
fn redis_url() -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert_ne!(
                std::env::var("TOKENWARDEN_TEST_REQUIRE_SERVICES").as_deref(),
                Ok("1"),
                "TEST_REDIS_URL is not set, but TOKENWARDEN_TEST_REQUIRE_SERVICES=1 requires the Redis tests"
            );
            eprintln!("skipping: TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379)");
            None
        }
    }
}

/// A key prefix no other test (or run) uses.
fn fresh_prefix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "tokenwarden-test:{}:{nanos}:{}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn limits(user: u32, ip: u32, window: Duration) -> LoginLimits {
    LoginLimits {
        per_user: Limit {
            count: user,
            window,
        },
        per_ip: Limit { count: ip, window },
    }
}

/// Two limiters on one Redis and prefix, as two server instances would be.
fn pair(url: &str, limits: LoginLimits) -> (RedisLoginLimiter, RedisLoginLimiter) {
    let prefix = fresh_prefix();
    (
        RedisLoginLimiter::connect_with_prefix(url, limits, &prefix).unwrap(),
        RedisLoginLimiter::connect_with_prefix(url, limits, &prefix).unwrap(),
    )
}

#[test]
fn failures_counted_by_one_instance_limit_the_username_on_another() {
    let Some(url) = redis_url() else { return };
    let (a, b) = pair(&url, limits(3, 1000, Duration::from_secs(60)));
    for _ in 0..3 {
        assert_eq!(a.admit(Some("alice"), None, T0), Admission::Allowed);
        a.record_failure("alice", T0);
    }
    match b.admit(Some("alice"), None, T0) {
        Admission::Limited { retry_after } => {
            assert!(
                retry_after > Duration::from_secs(50) && retry_after <= Duration::from_secs(60)
            );
        }
        other => panic!("expected a limit, got {other:?}"),
    }
    assert_eq!(b.admit(Some("bob"), None, T0), Admission::Allowed);
}

#[test]
fn a_success_on_any_instance_forgets_the_failures() {
    let Some(url) = redis_url() else { return };
    let (a, b) = pair(&url, limits(2, 1000, Duration::from_secs(60)));
    a.record_failure("alice", T0);
    a.record_failure("alice", T0);
    assert!(matches!(
        b.admit(Some("alice"), None, T0),
        Admission::Limited { .. }
    ));
    b.reset("alice");
    assert_eq!(a.admit(Some("alice"), None, T0), Admission::Allowed);
}

#[test]
fn every_attempt_counts_against_the_address_on_every_instance() {
    let Some(url) = redis_url() else { return };
    let (a, b) = pair(&url, limits(100, 4, Duration::from_secs(60)));
    for i in 0..4 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            limiter.admit(None, Some("192.0.2.1"), T0),
            Admission::Allowed
        );
    }
    assert!(matches!(
        a.admit(None, Some("192.0.2.1"), T0),
        Admission::Limited { .. }
    ));
    assert_eq!(b.admit(None, Some("192.0.2.2"), T0), Admission::Allowed);
}

#[test]
fn windows_close_by_themselves() {
    let Some(url) = redis_url() else { return };
    let (a, _) = pair(&url, limits(1, 1, Duration::from_millis(300)));
    a.record_failure("alice", T0);
    assert!(matches!(
        a.admit(Some("alice"), None, T0),
        Admission::Limited { .. }
    ));
    assert_eq!(a.admit(None, Some("192.0.2.1"), T0), Admission::Allowed);
    assert!(matches!(
        a.admit(None, Some("192.0.2.1"), T0),
        Admission::Limited { .. }
    ));
    sleep(Duration::from_millis(450));
    assert_eq!(
        a.admit(Some("alice"), Some("192.0.2.1"), T0),
        Admission::Allowed
    );
}

#[test]
fn an_unreachable_redis_at_start_still_limits_logins_in_process() {
    let limiter = RedisLoginLimiter::connect(
        "redis://:hunter2hunter2@127.0.0.1:1",
        limits(1, 1000, Duration::from_secs(60)),
    )
    .unwrap();
    assert!(!format!("{limiter:?}").contains("hunter2"));
    limiter.record_failure("alice", T0);
    assert!(matches!(
        limiter.admit(Some("alice"), None, T0),
        Admission::Limited { .. }
    ));
    let e = RedisLoginLimiter::connect("http://nope", LoginLimits::default()).unwrap_err();
    assert!(!e.to_string().contains("nope"), "{e}");
}

#[test]
fn when_redis_goes_away_the_limits_hold_in_process() {
    let limiter =
        RedisLoginLimiter::unreachable_for_tests(limits(2, 1000, Duration::from_secs(60)));
    limiter.record_failure("alice", T0);
    limiter.record_failure("alice", T0);
    assert!(matches!(
        limiter.admit(Some("alice"), None, T0),
        Admission::Limited { .. }
    ));
    limiter.reset("alice");
    assert_eq!(limiter.admit(Some("alice"), None, T0), Admission::Allowed);
}
