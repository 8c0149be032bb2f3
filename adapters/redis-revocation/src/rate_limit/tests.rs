#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::AtomicU32;
use std::thread::sleep;
use std::time::Instant;

use limits::{InProcessIpLimiter, InProcessLoginLimiter};

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

fn ip_limits(register: u32) -> IpLimits {
    IpLimits {
        registration: Limit {
            count: register,
            window: Duration::from_secs(60),
        },
        refresh_failure: Limit::per_minute(register),
    }
}

fn limiter_at(url: &str, prefix: &str, login: LoginLimits, timeout: Duration) -> RedisLimiter {
    let config = LimiterConfig {
        prefix: prefix.to_owned(),
        timeout,
        login,
        ip: ip_limits(2),
    };
    let fallback = Fallback {
        login: Arc::new(InProcessLoginLimiter::new(login)),
        ip: Arc::new(InProcessIpLimiter::new(config.ip)),
    };
    RedisLimiter::connect(url, config, fallback).unwrap()
}

/// Two limiters on one Redis and prefix, as two server instances would be.
fn pair(url: &str, limits: LoginLimits) -> (RedisLimiter, RedisLimiter) {
    let prefix = fresh_prefix();
    let timeout = Duration::from_secs(2);
    (
        limiter_at(url, &prefix, limits, timeout),
        limiter_at(url, &prefix, limits, timeout),
    )
}

#[test]
fn reservations_by_one_instance_limit_the_username_on_another() {
    let Some(url) = redis_url() else { return };
    let (a, b) = pair(&url, limits(3, 1000, Duration::from_secs(60)));
    for _ in 0..3 {
        assert_eq!(a.reserve(Some("alice"), None, T0), Admission::Allowed);
    }
    match b.reserve(Some("alice"), None, T0) {
        Admission::Limited { retry_after } => {
            assert!(
                retry_after > Duration::from_secs(50) && retry_after <= Duration::from_secs(60)
            );
        }
        other => panic!("expected a limit, got {other:?}"),
    }
    assert_eq!(b.reserve(Some("bob"), None, T0), Admission::Allowed);
}

#[test]
fn of_simultaneous_guesses_on_two_instances_at_most_the_budget_get_through() {
    let Some(url) = redis_url() else { return };
    let (a, b) = pair(&url, limits(5, 1000, Duration::from_secs(60)));
    let (a, b) = (Arc::new(a), Arc::new(b));
    let threads: Vec<_> = (0..40)
        .map(|i| {
            let l = if i % 2 == 0 {
                Arc::clone(&a)
            } else {
                Arc::clone(&b)
            };
            std::thread::spawn(move || l.reserve(Some("alice"), Some("192.0.2.9"), T0))
        })
        .collect();
    let allowed = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|r| *r == Admission::Allowed)
        .count();
    assert_eq!(allowed, 5);
}

#[test]
fn a_success_on_any_instance_forgets_the_failures() {
    let Some(url) = redis_url() else { return };
    let (a, b) = pair(&url, limits(2, 1000, Duration::from_secs(60)));
    a.reserve(Some("alice"), None, T0);
    a.reserve(Some("alice"), None, T0);
    assert!(matches!(
        b.reserve(Some("alice"), None, T0),
        Admission::Limited { .. }
    ));
    b.reset("alice");
    assert_eq!(a.reserve(Some("alice"), None, T0), Admission::Allowed);
}

#[test]
fn a_released_reservation_gives_back_one_place_on_every_instance() {
    let Some(url) = redis_url() else { return };
    let (a, b) = pair(&url, limits(2, 1000, Duration::from_secs(60)));
    // Nothing to give back: the count does not go below zero.
    a.release("alice", T0);
    a.reserve(Some("alice"), None, T0);
    a.reserve(Some("alice"), None, T0);
    b.release("alice", T0);
    assert_eq!(a.reserve(Some("alice"), None, T0), Admission::Allowed);
    assert!(matches!(
        b.reserve(Some("alice"), None, T0),
        Admission::Limited { .. }
    ));
}

#[test]
fn every_attempt_counts_against_the_address_on_every_instance() {
    let Some(url) = redis_url() else { return };
    let (a, b) = pair(&url, limits(100, 4, Duration::from_secs(60)));
    for i in 0..4 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            limiter.reserve(None, Some("192.0.2.1"), T0),
            Admission::Allowed
        );
    }
    assert!(matches!(
        a.reserve(Some("carol"), Some("192.0.2.1"), T0),
        Admission::Limited { .. }
    ));
    assert_eq!(b.reserve(None, Some("192.0.2.2"), T0), Admission::Allowed);
}

#[test]
fn ip_budgets_are_shared_and_refunds_make_room() {
    let Some(url) = redis_url() else { return };
    let (a, b) = pair(&url, LoginLimits::default());
    let ip = "198.51.100.4";
    b.refund(IpBudget::RefreshFailure, ip, T0);
    assert_eq!(
        a.count(IpBudget::RefreshFailure, ip, T0),
        Admission::Allowed,
        "a refund of nothing gives nothing"
    );
    assert_eq!(
        b.count(IpBudget::RefreshFailure, ip, T0),
        Admission::Allowed
    );
    a.refund(IpBudget::RefreshFailure, ip, T0);
    assert_eq!(
        a.count(IpBudget::RefreshFailure, ip, T0),
        Admission::Allowed,
        "the refund of another instance's count"
    );
    assert!(matches!(
        b.count(IpBudget::RefreshFailure, ip, T0),
        Admission::Limited { .. }
    ));
    assert_eq!(a.count(IpBudget::Registration, ip, T0), Admission::Allowed);
    assert_eq!(b.count(IpBudget::Registration, ip, T0), Admission::Allowed);
    assert!(matches!(
        a.count(IpBudget::Registration, ip, T0),
        Admission::Limited { .. }
    ));
}

#[test]
fn windows_close_by_themselves() {
    let Some(url) = redis_url() else { return };
    let (a, _) = pair(&url, limits(1, 1, Duration::from_millis(300)));
    a.reserve(Some("alice"), None, T0);
    assert!(matches!(
        a.reserve(Some("alice"), None, T0),
        Admission::Limited { .. }
    ));
    assert_eq!(a.reserve(None, Some("192.0.2.1"), T0), Admission::Allowed);
    assert!(matches!(
        a.reserve(None, Some("192.0.2.1"), T0),
        Admission::Limited { .. }
    ));
    sleep(Duration::from_millis(450));
    assert_eq!(
        a.reserve(Some("alice"), Some("192.0.2.1"), T0),
        Admission::Allowed
    );
}

#[test]
fn an_unreachable_redis_limits_in_process_and_the_url_stays_secret() {
    let l = limiter_at(
        "redis://:hunter2hunter2@127.0.0.1:1",
        "p:",
        limits(1, 1000, Duration::from_secs(60)),
        Duration::from_millis(200),
    );
    assert!(!format!("{l:?}").contains("hunter2"));
    assert_eq!(l.reserve(Some("alice"), None, T0), Admission::Allowed);
    assert!(matches!(
        l.reserve(Some("alice"), None, T0),
        Admission::Limited { .. }
    ));
    l.reset("alice");
    assert_eq!(l.reserve(Some("alice"), None, T0), Admission::Allowed);
    let e = RedisLimiter::connect(
        "http://nope",
        LimiterConfig {
            prefix: "p:".to_owned(),
            timeout: Duration::from_millis(200),
            login: LoginLimits::default(),
            ip: IpLimits::default(),
        },
        Fallback {
            login: Arc::new(application::rate_limit::Unlimited),
            ip: Arc::new(application::rate_limit::Unlimited),
        },
    )
    .unwrap_err();
    assert!(!e.to_string().contains("nope"), "{e}");
}

/// A Redis that accepts connections and never answers (the frozen
/// Redis): the first call waits one timeout, the next ones none.
#[test]
fn a_frozen_redis_costs_one_timeout_then_nothing_while_backing_off() {
    let frozen = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", frozen.local_addr().unwrap());
    let timeout = Duration::from_millis(250);
    let l = limiter_at(
        &url,
        "p:",
        limits(5, 1000, Duration::from_secs(60)),
        timeout,
    );
    let started = Instant::now();
    assert_eq!(l.reserve(Some("alice"), None, T0), Admission::Allowed);
    let first = started.elapsed();
    assert!(first < timeout * 3, "{first:?}");
    let started = Instant::now();
    for _ in 0..10 {
        l.reserve(Some("bob"), None, T0);
        l.refund(IpBudget::RefreshFailure, "192.0.2.1", T0);
    }
    let next = started.elapsed();
    assert!(next < Duration::from_millis(50), "{next:?}");
    drop(frozen);
}

#[test]
fn concurrent_reservations_of_an_ip_budget_are_exact_across_instances() {
    let Some(url) = redis_url() else { return };
    let (a, b) = pair(&url, LoginLimits::default());
    let (a, b) = (&a, &b);
    let allowed: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..40)
            .map(|i| {
                scope.spawn(move || {
                    let l = if i % 2 == 0 { a } else { b };
                    l.count(IpBudget::RefreshFailure, "198.51.100.5", T0)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_or(0, |a| usize::from(a == Admission::Allowed)))
            .sum()
    });
    assert_eq!(allowed, 2);
}
