use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use super::*;

fn pw(s: &str) -> Password {
    Password::parse(s.to_owned()).unwrap()
}

/// One shared hasher: construction computes a dummy hash, no need to pay it
/// in every test.
fn hasher() -> &'static Argon2Hasher {
    static HASHER: OnceLock<Argon2Hasher> = OnceLock::new();
    HASHER.get_or_init(|| Argon2Hasher::new(2))
}

#[test]
fn a_hashed_password_verifies() {
    let h = hasher();
    let hash = h.hash(&pw("correct horse battery")).unwrap();
    assert!(h.verify(&pw("correct horse battery"), Some(&hash)).unwrap());
}

#[test]
fn a_wrong_password_does_not_verify() {
    let h = hasher();
    let hash = h.hash(&pw("correct horse battery")).unwrap();
    assert!(!h
        .verify(&pw("correct horse battery!"), Some(&hash))
        .unwrap());
}

#[test]
fn an_unknown_user_never_verifies() {
    let h = hasher();
    assert!(!h.verify(&pw("correct horse battery"), None).unwrap());
    // The dummy it checked against uses the same parameters as real hashes.
    let dummy = h.dummy.clone().unwrap();
    assert!(dummy.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
}

#[test]
fn hashes_are_argon2id_with_owasp_parameters_and_a_fresh_salt() {
    let h = hasher();
    let a = h.hash(&pw("same password")).unwrap();
    let b = h.hash(&pw("same password")).unwrap();
    assert!(
        a.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        a.as_str()
    );
    assert_ne!(a.as_str(), b.as_str(), "each hash gets its own salt");
    let parsed = phc::PasswordHash::new(a.as_str()).unwrap();
    assert_eq!(parsed.salt.unwrap().len(), 16, "16-byte salt");
}

#[test]
fn unicode_passwords_round_trip() {
    let h = hasher();
    let hash = h.hash(&pw("pässwörd-😀-密码")).unwrap();
    assert!(h.verify(&pw("pässwörd-😀-密码"), Some(&hash)).unwrap());
    assert!(!h.verify(&pw("passwörd-😀-密码"), Some(&hash)).unwrap());
}

#[test]
fn an_unreadable_stored_hash_is_a_crypto_error() {
    let h = hasher();
    for bad in [
        "",
        "not a hash",
        "$argon2id$v=19$m=19456,t=2,p=1",
        "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
        "$argon2id$v=19$m=19456,t=2,p=1$%%%$%%%",
    ] {
        let result = h.verify(
            &pw("whatever-pass"),
            Some(&PasswordHash::new(bad.to_owned())),
        );
        assert!(result.is_err(), "{bad:?} should not be readable");
    }
}

#[test]
fn hashes_with_older_parameters_still_verify() {
    let weak = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(8, 1, 1, None).unwrap(),
    );
    let old = crate_hash(&weak, b"legacy-password");
    assert!(hasher()
        .verify(&pw("legacy-password"), Some(&PasswordHash::new(old)))
        .unwrap());
}

/// A hash made by the argon2 crate's own `PasswordHasher` (how hashes were
/// stored before the workspaces).
fn crate_hash(argon2: &Argon2<'_>, password: &[u8]) -> String {
    use argon2::PasswordHasher as _;
    argon2.hash_password(password).unwrap().to_string()
}

/// Hashes stored by earlier versions, made with argon2 0.5 (its own
/// `PasswordHasher`, and ours over its `hash_password_into_with_memory`),
/// password `made by argon2 0.5`: they must verify as long as they are in
/// a database.
const STORED_BY_ARGON2_0_5: [&str; 3] = [
    "$argon2id$v=19$m=19456,t=2,p=1$9v6yiQymIRBPlrcz3Bp8Lw$BX59AbTV7bPyy0WGE7x9j9zpdkuSRuG5z6O90c+kb6c",
    "$argon2id$v=19$m=8,t=1,p=1$rc/YKL5wZa0wuykotMEUMQ$MKi/0R8wdLV01hMhffL3DoZ04uVflN4lpQAuFF46LHw",
    "$argon2id$v=19$m=19456,t=2,p=1$j1G/f9nMs5MFIpsQq+Ww5Q$IT+SutQRST9mTtnHSoKq+ChKGuH5DgbjEOpg3BGpfU0",
];

#[test]
fn hashes_stored_by_argon2_0_5_still_verify() {
    use argon2::PasswordVerifier as _;
    let cheap = Argon2Hasher::with_cost(1, HashCost::Minimal);
    for stored in STORED_BY_ARGON2_0_5 {
        let stored_hash = PasswordHash::new(stored.to_owned());
        for h in [hasher(), &cheap] {
            assert!(
                h.verify(&pw("made by argon2 0.5"), Some(&stored_hash))
                    .unwrap(),
                "{stored}"
            );
            assert!(
                !h.verify(&pw("made by argon2 0.6"), Some(&stored_hash))
                    .unwrap(),
                "{stored}"
            );
        }
        // And by the crate's own verifier.
        let parsed = phc::PasswordHash::new(stored).unwrap();
        assert!(Argon2::default()
            .verify_password(b"made by argon2 0.5", &parsed)
            .is_ok());
    }
}

#[test]
fn hashes_made_by_the_crate_itself_verify_and_ours_verify_with_it() {
    use argon2::PasswordVerifier as _;
    let current = Argon2::new(Algorithm::Argon2id, Version::V0x13, owasp_params());
    let theirs = crate_hash(&current, b"both ways round");
    assert!(hasher()
        .verify(&pw("both ways round"), Some(&PasswordHash::new(theirs)))
        .unwrap());
    let ours = hasher().hash(&pw("both ways round")).unwrap();
    let parsed = phc::PasswordHash::new(ours.as_str()).unwrap();
    assert!(current.verify_password(b"both ways round", &parsed).is_ok());
    assert!(current
        .verify_password(b"both ways round?", &parsed)
        .is_err());
}

#[test]
fn a_hash_stored_with_more_memory_than_a_workspace_still_verifies() {
    let small = Argon2Hasher::with_params(1, Params::new(8, 1, 1, None).unwrap());
    let bigger = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(64, 1, 1, None).unwrap(),
    );
    let stored = PasswordHash::new(crate_hash(&bigger, b"roomy-password"));
    assert!(small.verify(&pw("roomy-password"), Some(&stored)).unwrap());
    assert!(!small.verify(&pw("roomy-passwort"), Some(&stored)).unwrap());
}

#[test]
fn at_most_max_concurrent_computations_overlap() {
    let h = Arc::new(Argon2Hasher::new(1));
    let done = Arc::new(AtomicBool::new(false));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let max_queue = Arc::new(AtomicUsize::new(0));

    let monitor = {
        let (h, done, max_seen, max_queue) = (
            Arc::clone(&h),
            Arc::clone(&done),
            Arc::clone(&max_seen),
            Arc::clone(&max_queue),
        );
        thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                max_seen.fetch_max(h.in_flight(), Ordering::SeqCst);
                max_queue.fetch_max(h.queue_depth(), Ordering::SeqCst);
                thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let h = Arc::clone(&h);
            thread::spawn(move || {
                let p = pw(&format!("password-{i}"));
                let hash = h.hash(&p).unwrap();
                assert!(h.verify(&p, Some(&hash)).unwrap());
                assert!(!h.verify(&p, None).unwrap());
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    monitor.join().unwrap();

    assert_eq!(
        max_seen.load(Ordering::SeqCst),
        1,
        "never more than one at once"
    );
    assert!(
        max_queue.load(Ordering::SeqCst) >= 1,
        "the others had to wait"
    );
    assert_eq!(h.in_flight(), 0);
    assert_eq!(h.queue_depth(), 0);
}

#[test]
fn zero_workers_are_treated_as_one() {
    assert_eq!(Argon2Hasher::new(0).max_concurrent(), 1);
}

#[test]
fn debug_output_reveals_no_hash_or_salt() {
    let h = hasher();
    let shown = format!("{h:?}");
    let dummy = h.dummy.clone().unwrap();
    let salt = dummy.split('$').nth(4).unwrap();
    assert!(!shown.contains(salt), "{shown}");
    assert!(!shown.contains("$argon2id$"), "{shown}");
    assert!(shown.contains("Argon2Hasher"));
    assert!(shown.contains("19456"));
}

#[test]
fn an_unknown_user_costs_about_what_a_wrong_password_costs() {
    let h = hasher();
    let stored = h.hash(&pw("the real password")).unwrap();
    let fastest = |f: &dyn Fn()| {
        (0..3)
            .map(|_| {
                let start = std::time::Instant::now();
                f();
                start.elapsed()
            })
            .min()
            .unwrap()
    };
    let wrong = fastest(&|| assert!(!h.verify(&pw("a wrong password"), Some(&stored)).unwrap()));
    let unknown = fastest(&|| assert!(!h.verify(&pw("a wrong password"), None).unwrap()));
    // Loose bounds: this guards against a shortcut (microseconds instead of
    // milliseconds), not against scheduler noise.
    let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
    assert!(
        (0.25..4.0).contains(&ratio),
        "unknown {unknown:?} vs wrong {wrong:?}"
    );
}

#[test]
fn the_minimal_cost_is_argon2s_minimum_and_its_hashes_verify_at_either_cost() {
    let cheap = Argon2Hasher::with_cost(1, HashCost::Minimal);
    let stored = cheap.hash(&pw("cheap but valid")).unwrap();
    let parsed = phc::PasswordHash::new(stored.as_str()).unwrap();
    let params = Params::try_from(&parsed).unwrap();
    assert_eq!(
        (params.m_cost(), params.t_cost(), params.p_cost()),
        (8, 1, 1)
    );
    assert!(cheap.verify(&pw("cheap but valid"), Some(&stored)).unwrap());
    assert!(!cheap.verify(&pw("cheap but wrong"), Some(&stored)).unwrap());
    // An unknown user is checked against a dummy hash of the same cost.
    assert!(!cheap.verify(&pw("cheap but valid"), None).unwrap());
    assert!(hasher()
        .verify(&pw("cheap but valid"), Some(&stored))
        .unwrap());
    let owasp = hasher().hash(&pw("dear but valid")).unwrap();
    assert!(cheap.verify(&pw("dear but valid"), Some(&owasp)).unwrap());
    assert_eq!(HashCost::default(), HashCost::Owasp);
}
