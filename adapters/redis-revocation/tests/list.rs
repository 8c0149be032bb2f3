//! The Redis revocation list against real Redis servers: sharing between
//! instances, expiry, and what happens when Redis is down or goes away.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use application::ports::{Consistency, Revocation, RevocationKey, RevocationList};
use domain::{AccessTokenId, SessionId, Timestamp};
use redis_revocation::testing::{test_redis_url, unique_prefix, MemoryRevocationList, RedisServer};
use redis_revocation::{OnRedisFailure, RedisConfig, RedisRevocationList};

const TIMEOUT: Duration = Duration::from_millis(250);

fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp::from_millis(i64::try_from(ms).unwrap())
}

fn config(url: &str, prefix: &str, on_failure: OnRedisFailure) -> RedisConfig {
    RedisConfig {
        url: url.to_owned(),
        key_prefix: prefix.to_owned(),
        timeout: TIMEOUT,
        on_failure,
        pool_size: 4,
    }
}

fn list(
    url: &str,
    prefix: &str,
    on_failure: OnRedisFailure,
    db: &Arc<MemoryRevocationList>,
) -> RedisRevocationList {
    RedisRevocationList::new(config(url, prefix, on_failure), db.clone()).unwrap()
}

fn session() -> RevocationKey {
    RevocationKey::Session(SessionId::from_random_bytes(rand_bytes()))
}

fn rand_bytes() -> [u8; 16] {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut b = [0u8; 16];
    b.copy_from_slice(&n.to_le_bytes());
    b[15] ^= 0x5a;
    b
}

fn entry(key: RevocationKey, ttl: Duration) -> Revocation {
    Revocation {
        key,
        expires_at: now().plus(ttl),
    }
}

/// Waits (up to `within`) until `check` says `key` is revoked; returns how
/// long it took.
fn seen_within(
    list: &RedisRevocationList,
    key: RevocationKey,
    consistency: Consistency,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        if list.check(&[key], now(), consistency).unwrap() == Some(key) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{key} not seen {consistency:?} within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn an_entry_recorded_on_one_instance_is_seen_by_another_at_once() {
    let Some(url) = test_redis_url() else { return };
    let prefix = unique_prefix();
    let db = Arc::new(MemoryRevocationList::default());
    let a = list(&url, &prefix, OnRedisFailure::FailClosed, &db);
    let b = list(&url, &prefix, OnRedisFailure::FailClosed, &db);
    assert!(a.in_sync() && b.in_sync(), "both subscribed and caught up");

    let key = session();
    assert_eq!(b.check(&[key], now(), Consistency::Cached).unwrap(), None);
    a.revoke(&[entry(key, Duration::from_secs(60))]).unwrap();

    assert_eq!(
        a.check(&[key], now(), Consistency::Cached).unwrap(),
        Some(key)
    );
    assert_eq!(
        b.check(&[key], now(), Consistency::Fresh).unwrap(),
        Some(key)
    );
    let took = seen_within(&b, key, Consistency::Cached, Duration::from_millis(500));
    eprintln!("pub/sub propagation took {took:?}");
    assert_eq!(
        db.check(&[key], now(), Consistency::Fresh).unwrap(),
        Some(key),
        "recorded durably"
    );
    // Other prefixes (other deployments, other tests) see nothing.
    let other = list(
        &url,
        &unique_prefix(),
        OnRedisFailure::FailClosed,
        &Arc::default(),
    );
    assert_eq!(
        other.check(&[key], now(), Consistency::Fresh).unwrap(),
        None
    );
}

#[test]
fn redis_drops_an_entry_when_the_tokens_it_covers_have_expired() {
    let Some(url) = test_redis_url() else { return };
    let prefix = unique_prefix();
    let db = Arc::new(MemoryRevocationList::default());
    let a = list(&url, &prefix, OnRedisFailure::FailClosed, &db);
    let key = session();
    let e = entry(key, Duration::from_millis(400));
    a.revoke(&[e]).unwrap();

    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let name = format!("{prefix}revoked:{key}");
    let pexpiretime: i64 = redis::cmd("PEXPIRETIME")
        .arg(&name)
        .query(&mut conn)
        .unwrap();
    assert_eq!(
        pexpiretime,
        e.expires_at.as_millis(),
        "PXAT = the entry's expiry"
    );

    std::thread::sleep(Duration::from_millis(500));
    let exists: bool = redis::cmd("EXISTS").arg(&name).query(&mut conn).unwrap();
    assert!(!exists);
    for c in [Consistency::Cached, Consistency::Fresh] {
        assert_eq!(a.check(&[key], now(), c).unwrap(), None, "{c:?}");
    }
}

#[test]
fn a_redis_that_is_down_at_start_falls_back_to_the_database_without_hanging() {
    let db = Arc::new(MemoryRevocationList::default());
    let known = session();
    db.revoke(&[entry(known, Duration::from_secs(60))]).unwrap();

    let started = Instant::now();
    let down = list(
        "redis://127.0.0.1:1",
        &unique_prefix(),
        OnRedisFailure::Fallback,
        &db,
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "start-up does not wait long"
    );
    assert!(!down.in_sync());

    let started = Instant::now();
    for c in [Consistency::Cached, Consistency::Fresh] {
        assert_eq!(down.check(&[known], now(), c).unwrap(), Some(known));
        assert_eq!(down.check(&[session()], now(), c).unwrap(), None);
    }
    let new = session();
    down.revoke(&[entry(new, Duration::from_secs(60))]).unwrap();
    assert_eq!(
        down.check(&[new], now(), Consistency::Cached).unwrap(),
        Some(new)
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "no call waits for Redis"
    );
}

#[test]
fn a_redis_that_is_down_fails_closed_when_so_configured() {
    let db = Arc::new(MemoryRevocationList::default());
    let down = list(
        "redis://127.0.0.1:1",
        &unique_prefix(),
        OnRedisFailure::FailClosed,
        &db,
    );
    let started = Instant::now();
    for c in [Consistency::Cached, Consistency::Fresh] {
        assert!(down.check(&[session()], now(), c).is_err(), "{c:?}");
    }
    // Recording still works: the database is the record.
    let key = session();
    down.revoke(&[entry(key, Duration::from_secs(60))]).unwrap();
    assert_eq!(
        db.check(&[key], now(), Consistency::Fresh).unwrap(),
        Some(key)
    );
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[test]
fn a_redis_stopped_mid_test_is_noticed_at_once_and_caught_up_when_it_returns() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let prefix = unique_prefix();
    let db = Arc::new(MemoryRevocationList::default());
    let a = list(&server.url(), &prefix, OnRedisFailure::Fallback, &db);
    let b = list(&server.url(), &prefix, OnRedisFailure::Fallback, &db);
    let strict = list(&server.url(), &prefix, OnRedisFailure::FailClosed, &db);
    assert!(a.in_sync() && b.in_sync() && strict.in_sync());
    let before = session();
    a.revoke(&[entry(before, Duration::from_secs(60))]).unwrap();
    seen_within(&b, before, Consistency::Cached, Duration::from_millis(500));

    server.stop();
    // The subscriptions drop with the connection: the copies stop being
    // trusted within a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    while b.in_sync() || strict.in_sync() {
        assert!(Instant::now() < deadline, "the outage went unnoticed");
        std::thread::sleep(Duration::from_millis(5));
    }

    // Revoked while Redis is down: recorded in the database only.
    let during = session();
    let started = Instant::now();
    a.revoke(&[entry(during, Duration::from_secs(60))]).unwrap();
    for c in [Consistency::Cached, Consistency::Fresh] {
        assert_eq!(
            b.check(&[during], now(), c).unwrap(),
            Some(during),
            "fallback {c:?}"
        );
        assert_eq!(
            b.check(&[before], now(), c).unwrap(),
            Some(before),
            "fallback {c:?}"
        );
        assert_eq!(b.check(&[session()], now(), c).unwrap(), None);
        assert!(
            strict.check(&[session()], now(), c).is_err(),
            "fail closed {c:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "nothing hangs on the dead Redis"
    );

    // Back, empty: every instance pushes what the database has, and trusts
    // its copy again only then.
    server.restart();
    for l in [&a, &b, &strict] {
        assert!(
            l.wait_until_in_sync(Duration::from_secs(10)),
            "caught up again"
        );
    }
    for l in [&b, &strict] {
        for c in [Consistency::Cached, Consistency::Fresh] {
            assert_eq!(l.check(&[during], now(), c).unwrap(), Some(during), "{c:?}");
            assert_eq!(l.check(&[before], now(), c).unwrap(), Some(before), "{c:?}");
        }
    }
    let after = session();
    b.revoke(&[entry(after, Duration::from_secs(60))]).unwrap();
    seen_within(&a, after, Consistency::Cached, Duration::from_millis(500));
}

#[test]
fn the_id_of_one_access_token_is_shared_like_a_session() {
    let Some(url) = test_redis_url() else { return };
    let prefix = unique_prefix();
    let db = Arc::new(MemoryRevocationList::default());
    let a = list(&url, &prefix, OnRedisFailure::Fallback, &db);
    let b = list(&url, &prefix, OnRedisFailure::Fallback, &db);
    let jti = RevocationKey::AccessToken(AccessTokenId::from_random_bytes(rand_bytes()));
    let sid = session();
    a.revoke(&[entry(jti, Duration::from_secs(60))]).unwrap();
    seen_within(&b, jti, Consistency::Cached, Duration::from_millis(500));
    assert_eq!(
        b.check(&[sid, jti], now(), Consistency::Fresh).unwrap(),
        Some(jti)
    );
    assert_eq!(
        b.live(now()).unwrap().len(),
        1,
        "live comes from the database"
    );
}

#[test]
fn a_flushed_redis_is_noticed_answered_from_the_database_and_filled_again() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let prefix = unique_prefix();
    let db = Arc::new(MemoryRevocationList::default());
    let a = list(&server.url(), &prefix, OnRedisFailure::FailClosed, &db);
    let b = list(&server.url(), &prefix, OnRedisFailure::FailClosed, &db);
    assert!(a.in_sync() && b.in_sync());
    let revoked = session();
    a.revoke(&[entry(revoked, Duration::from_secs(60))])
        .unwrap();
    seen_within(&b, revoked, Consistency::Fresh, Duration::from_millis(500));

    // Our own server: FLUSHALL touches no one else's keys.
    server.flush_all();
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();

    // At once, and every moment after: the entry is still revoked, for
    // both kinds of check, even under fail_closed (Redis is up).
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        for list in [&a, &b] {
            for c in [Consistency::Fresh, Consistency::Cached] {
                assert_eq!(
                    list.check(&[revoked], now(), c).unwrap(),
                    Some(revoked),
                    "{c:?} after FLUSHALL"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Filled again from the database: the key and the marker are back.
    assert!(a.wait_until_in_sync(Duration::from_secs(2)));
    assert!(b.wait_until_in_sync(Duration::from_secs(2)));
    let value: Option<i64> = redis::cmd("GET")
        .arg(format!("{prefix}revoked:{revoked}"))
        .query(&mut conn)
        .unwrap();
    assert!(value.is_some(), "the entry is in redis again");
    let marker: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}filled"))
        .query(&mut conn)
        .unwrap();
    assert!(marker.is_some());
    assert_eq!(
        b.check(&[revoked], now(), Consistency::Fresh).unwrap(),
        Some(revoked)
    );
}
