//! The revocation list in the database: entries, expiry, the in-memory copy
//! and what another instance sees.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use application::ports::{Consistency, Revocation, RevocationKey, RevocationList};
use domain::{AccessTokenId, SessionId, Timestamp};
use persistence::DbRevocationList;

use crate::common::*;

on_both_backends!(
    an_entry_is_in_force_until_it_expires_cached_and_fresh,
    a_repeated_entry_keeps_the_later_expiry,
    the_first_listed_key_is_reported_in_the_order_asked,
    live_lists_only_entries_in_force,
    another_instance_sees_an_entry_fresh_at_once_and_cached_within_the_trust_window,
);

/// The wall clock: the list's poller prunes by it, so entries in these tests
/// expire relative to real time.
fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp::from_millis(i64::try_from(ms).unwrap())
}

fn session_key() -> RevocationKey {
    RevocationKey::Session(SessionId::from_random_bytes(rand::random()))
}

fn jti_key() -> RevocationKey {
    RevocationKey::AccessToken(AccessTokenId::from_random_bytes(rand::random()))
}

fn entry(key: RevocationKey, expires_at: Timestamp) -> Revocation {
    Revocation { key, expires_at }
}

const BOTH: [Consistency; 2] = [Consistency::Cached, Consistency::Fresh];

fn an_entry_is_in_force_until_it_expires_cached_and_fresh(db: &TestDatabase) {
    let list = DbRevocationList::new(db.open(2));
    let t = now();
    let (s, j) = (session_key(), jti_key());
    list.revoke(&[
        entry(s, t.plus(Duration::from_secs(60))),
        entry(j, t.plus(Duration::from_secs(10))),
    ])
    .unwrap();
    for c in BOTH {
        assert_eq!(list.check(&[s], t, c).unwrap(), Some(s), "{c:?}");
        assert_eq!(list.check(&[j], t, c).unwrap(), Some(j), "{c:?}");
        let at_expiry = t.plus(Duration::from_secs(10));
        assert_eq!(list.check(&[j], at_expiry, c).unwrap(), None, "{c:?}");
        assert_eq!(list.check(&[s], at_expiry, c).unwrap(), Some(s), "{c:?}");
        assert_eq!(list.check(&[session_key()], t, c).unwrap(), None, "{c:?}");
        assert_eq!(list.check(&[], t, c).unwrap(), None, "{c:?}");
    }
}

fn a_repeated_entry_keeps_the_later_expiry(db: &TestDatabase) {
    let database = db.open(2);
    let list = DbRevocationList::new(database.clone());
    let t = now();
    let s = session_key();
    list.revoke(&[entry(s, t.plus(Duration::from_secs(60)))])
        .unwrap();
    list.revoke(&[entry(s, t.plus(Duration::from_secs(5)))])
        .unwrap();
    let later = t.plus(Duration::from_secs(30));
    let fresh_instance = DbRevocationList::without_polling(database);
    for l in [&list, &fresh_instance] {
        for c in BOTH {
            assert_eq!(l.check(&[s], later, c).unwrap(), Some(s), "{c:?}");
        }
    }
    list.revoke(&[entry(s, t.plus(Duration::from_secs(90)))])
        .unwrap();
    assert_eq!(
        fresh_instance.live(t).unwrap(),
        vec![entry(s, t.plus(Duration::from_secs(90)))]
    );
}

fn the_first_listed_key_is_reported_in_the_order_asked(db: &TestDatabase) {
    let list = DbRevocationList::new(db.open(2));
    let t = now();
    let (s, j) = (session_key(), jti_key());
    let until = t.plus(Duration::from_secs(60));
    list.revoke(&[entry(s, until), entry(j, until)]).unwrap();
    for c in BOTH {
        assert_eq!(list.check(&[s, j], t, c).unwrap(), Some(s));
        assert_eq!(list.check(&[j, s], t, c).unwrap(), Some(j));
        assert_eq!(list.check(&[session_key(), j], t, c).unwrap(), Some(j));
    }
}

fn live_lists_only_entries_in_force(db: &TestDatabase) {
    let list = DbRevocationList::without_polling(db.open(2));
    let t = now();
    let (a, b) = (session_key(), jti_key());
    list.revoke(&[
        entry(a, t.plus(Duration::from_secs(60))),
        entry(b, t.plus(Duration::from_secs(1))),
    ])
    .unwrap();
    let mut live = list.live(t).unwrap();
    live.sort_by_key(|e| e.expires_at);
    assert_eq!(
        live,
        vec![
            entry(b, t.plus(Duration::from_secs(1))),
            entry(a, t.plus(Duration::from_secs(60)))
        ]
    );
    assert_eq!(
        list.live(t.plus(Duration::from_secs(1))).unwrap(),
        vec![entry(a, t.plus(Duration::from_secs(60)))]
    );
}

fn another_instance_sees_an_entry_fresh_at_once_and_cached_within_the_trust_window(
    db: &TestDatabase,
) {
    let a = DbRevocationList::new(db.open(2));
    let b = DbRevocationList::new(db.connect(2));
    let t = now();
    let s = session_key();
    // B has looked before, so its copy is trusted and says "not revoked".
    assert_eq!(b.check(&[s], t, Consistency::Cached).unwrap(), None);

    a.revoke(&[entry(s, t.plus(Duration::from_secs(60)))])
        .unwrap();
    let revoked_at = Instant::now();
    assert_eq!(a.check(&[s], t, Consistency::Cached).unwrap(), Some(s));
    assert_eq!(b.check(&[s], t, Consistency::Fresh).unwrap(), Some(s));
    loop {
        if b.check(&[s], t, Consistency::Cached).unwrap() == Some(s) {
            break;
        }
        assert!(
            revoked_at.elapsed() < DbRevocationList::TRUST_FOR,
            "B's cached view missed the entry for longer than the trust window"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
