#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use super::*;

const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

fn at(secs: u64) -> Timestamp {
    T0.plus(Duration::from_secs(secs))
}

fn limiter(user: u32, ip: u32) -> InProcessLoginLimiter {
    InProcessLoginLimiter::new(LoginLimits {
        per_user: Limit::per_minute(user),
        per_ip: Limit::per_minute(ip),
    })
}

#[test]
fn a_username_is_limited_after_its_reservations_until_the_window_closes() {
    let l = limiter(3, 1000);
    for s in 0..3 {
        assert_eq!(l.reserve(Some("alice"), None, at(s)), Admission::Allowed);
    }
    assert_eq!(
        l.reserve(Some("alice"), None, at(10)),
        Admission::Limited {
            retry_after: Duration::from_secs(50)
        }
    );
    assert_eq!(l.reserve(Some("alice"), None, at(60)), Admission::Allowed);
}

#[test]
fn of_simultaneous_guesses_at_most_the_budget_get_through() {
    let l = Arc::new(limiter(5, 100_000));
    let threads: Vec<_> = (0..40)
        .map(|_| {
            let l = Arc::clone(&l);
            std::thread::spawn(move || l.reserve(Some("alice"), Some("192.0.2.1"), T0))
        })
        .collect();
    let allowed = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|a| *a == Admission::Allowed)
        .count();
    assert_eq!(allowed, 5);
}

#[test]
fn other_usernames_are_not_affected() {
    let l = limiter(2, 1000);
    l.reserve(Some("alice"), None, at(0));
    l.reserve(Some("alice"), None, at(0));
    assert!(matches!(
        l.reserve(Some("alice"), None, at(1)),
        Admission::Limited { .. }
    ));
    assert_eq!(l.reserve(Some("bob"), None, at(1)), Admission::Allowed);
}

#[test]
fn a_success_forgets_the_failures() {
    let l = limiter(2, 1000);
    l.reserve(Some("alice"), None, at(0));
    l.reserve(Some("alice"), None, at(0));
    l.reset("alice");
    assert_eq!(l.reserve(Some("alice"), None, at(1)), Admission::Allowed);
}

#[test]
fn a_released_reservation_gives_back_one_place() {
    let l = limiter(2, 1000);
    l.release("alice", at(0));
    l.reserve(Some("alice"), None, at(0));
    l.reserve(Some("alice"), None, at(0));
    l.release("alice", at(1));
    assert_eq!(l.reserve(Some("alice"), None, at(1)), Admission::Allowed);
    assert!(matches!(
        l.reserve(Some("alice"), None, at(1)),
        Admission::Limited { .. }
    ));
}

#[test]
fn every_attempt_counts_against_the_ip_and_a_limited_ip_reserves_nothing() {
    let l = limiter(100, 3);
    for s in 0..3 {
        assert_eq!(
            l.reserve(Some("bob"), Some("203.0.113.9"), at(s)),
            Admission::Allowed
        );
    }
    assert_eq!(
        l.reserve(Some("carol"), Some("203.0.113.9"), at(30)),
        Admission::Limited {
            retry_after: Duration::from_secs(30)
        }
    );
    assert_eq!(
        l.reserve(None, Some("203.0.113.10"), at(30)),
        Admission::Allowed
    );
    let tight = limiter(1, 1);
    tight.reserve(None, Some("192.0.2.1"), at(0));
    assert!(matches!(
        tight.reserve(Some("carol"), Some("192.0.2.1"), at(0)),
        Admission::Limited { .. }
    ));
    assert_eq!(
        tight.reserve(Some("carol"), Some("192.0.2.2"), at(0)),
        Admission::Allowed,
        "the refused attempt reserved nothing for carol"
    );
}

#[test]
fn a_limited_username_waits_for_its_own_window() {
    let l = InProcessLoginLimiter::new(LoginLimits {
        per_user: Limit {
            count: 1,
            window: Duration::from_secs(600),
        },
        per_ip: Limit::per_minute(100),
    });
    l.reserve(Some("alice"), None, at(0));
    assert_eq!(
        l.reserve(Some("alice"), Some("192.0.2.1"), at(0)),
        Admission::Limited {
            retry_after: Duration::from_secs(600)
        }
    );
}

fn ip_limiter() -> InProcessIpLimiter {
    InProcessIpLimiter::new(IpLimits {
        registration: Limit {
            count: 2,
            window: Duration::from_secs(3600),
        },
        refresh_failure: Limit::per_minute(3),
    })
}

#[test]
fn ip_budgets_count_and_refund_separately() {
    let l = ip_limiter();
    let ip = "198.51.100.1";
    assert_eq!(
        l.count(IpBudget::Registration, ip, at(0)),
        Admission::Allowed
    );
    assert_eq!(
        l.count(IpBudget::Registration, ip, at(1)),
        Admission::Allowed
    );
    assert_eq!(
        l.count(IpBudget::Registration, ip, at(100)),
        Admission::Limited {
            retry_after: Duration::from_secs(3500)
        }
    );
    for s in 0..3 {
        assert_eq!(
            l.count(IpBudget::RefreshFailure, ip, at(s)),
            Admission::Allowed,
            "another budget"
        );
    }
    l.refund(IpBudget::RefreshFailure, ip, at(5));
    assert_eq!(
        l.count(IpBudget::RefreshFailure, ip, at(6)),
        Admission::Allowed,
        "a refund makes room for one more"
    );
    assert_eq!(
        l.count(IpBudget::RefreshFailure, ip, at(10)),
        Admission::Limited {
            retry_after: Duration::from_secs(50)
        }
    );
    l.refund(IpBudget::RefreshFailure, ip, at(70));
    assert_eq!(
        l.count(IpBudget::RefreshFailure, ip, at(70)),
        Admission::Allowed,
        "a new window"
    );
}

#[test]
fn concurrent_reservations_of_an_ip_budget_are_exact() {
    let l = std::sync::Arc::new(ip_limiter());
    let allowed: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..40)
            .map(|_| {
                let l = l.clone();
                scope.spawn(move || l.count(IpBudget::RefreshFailure, "198.51.100.9", at(0)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_or(0, |a| usize::from(a == Admission::Allowed)))
            .sum()
    });
    assert_eq!(allowed, 3);
}
