use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::thread;

use super::*;

const MIN: Duration = Duration::from_secs(60);
const TTL: Duration = Duration::from_secs(15 * 60);

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn pem_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".pem"))
        .collect();
    names.sort();
    names
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn opening_an_empty_directory_creates_a_key_and_a_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    let store = KeyStore::open(&dir).unwrap();

    let kid = store.current_kid();
    assert!(meta::is_valid_kid(&kid) && kid.len() == 16, "{kid}");
    assert_eq!(pem_files(&dir), vec![format!("{kid}.pem")]);
    let pem = fs::read_to_string(dir.join(format!("{kid}.pem"))).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(fs::read(dir.join(SECRET_FILE)).unwrap().len(), 32);
    assert_eq!(
        fs::read(dir.join(SECRET_FILE)).unwrap(),
        store.refresh_secret()
    );
    assert_ne!(store.refresh_secret(), [0u8; 32]);
    assert_eq!(read_metadata(&dir).unwrap().current, kid);
    assert!(
        !files::exists(&dir.join(".keys.lock")),
        "the lock is released"
    );
}

#[cfg(unix)]
#[test]
fn key_files_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    let store = KeyStore::open(&dir).unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(
        mode(&dir.join(format!("{}.pem", store.current_kid()))),
        0o600
    );
    assert_eq!(mode(&dir.join(SECRET_FILE)), 0o600);
    assert_eq!(mode(&dir.join(KEYS_FILE)), 0o600);
    let rotated = store.rotate(t(1_000), TTL).unwrap();
    assert_eq!(mode(&dir.join(format!("{rotated}.pem"))), 0o600);
}

#[test]
fn a_second_open_reuses_the_key_and_the_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let first = KeyStore::open(tmp.path()).unwrap();
    let second = KeyStore::open(tmp.path()).unwrap();
    assert_eq!(first.current_kid(), second.current_kid());
    assert_eq!(first.refresh_secret(), second.refresh_secret());
    assert_eq!(pem_files(tmp.path()).len(), 1);
    let now = system_now();
    assert_eq!(
        first.jwks_at(now, Duration::ZERO),
        second.jwks_at(now, Duration::ZERO)
    );
}

#[test]
fn concurrent_opens_of_an_empty_directory_agree_on_one_key_and_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(tmp.path().join("keys"));
    let n = 8;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (dir, barrier) = (Arc::clone(&dir), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                let store = KeyStore::open(&dir).unwrap();
                (store.current_kid(), store.refresh_secret())
            })
        })
        .collect();
    let results: HashSet<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        results.len(),
        1,
        "every opener sees the same key and secret"
    );
    assert_eq!(pem_files(&dir).len(), 1);
    let leftovers: Vec<_> = fs::read_dir(&*dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temp or lock files left: {leftovers:?}"
    );
}

#[test]
fn rotation_keeps_the_old_key_published_until_its_tokens_have_expired() {
    let tmp = tempfile::tempdir().unwrap();
    let store = KeyStore::open(tmp.path()).unwrap();
    let old = store.current_kid();
    let rotated_at = t(10_000_000);
    let new = store.rotate(rotated_at, TTL).unwrap();

    assert_ne!(old, new);
    assert_eq!(store.current_kid(), new);
    let leeway = Duration::from_secs(30);
    let last_valid = rotated_at.plus(TTL).plus(RELOAD_INTERVAL).plus(leeway);
    assert_eq!(
        store.published_kids(rotated_at, leeway),
        vec![new.clone(), old.clone()]
    );
    assert_eq!(
        store.published_kids(last_valid, leeway),
        vec![new.clone(), old.clone()]
    );
    assert_eq!(
        store.published_kids(last_valid.plus(Duration::from_millis(1)), leeway),
        vec![new]
    );
    assert_eq!(
        pem_files(tmp.path()).len(),
        2,
        "the old file stays until pruned"
    );
}

#[test]
fn the_jwks_lists_public_keys_only() {
    let tmp = tempfile::tempdir().unwrap();
    let store = KeyStore::open(tmp.path()).unwrap();
    let old = store.current_kid();
    let new = store.rotate(t(0), TTL).unwrap();
    let jwks = store.jwks_at(t(0), Duration::ZERO);
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["kid"], new.as_str());
    assert_eq!(keys[1]["kid"], old.as_str());
    for k in keys {
        let obj = k.as_object().unwrap();
        let mut fields: Vec<_> = obj.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["alg", "crv", "kid", "kty", "use", "x"]);
        assert_eq!(k["kty"], "OKP");
        assert_eq!(k["crv"], "Ed25519");
        assert_eq!(k["alg"], "EdDSA");
        assert_eq!(k["use"], "sig");
        let x = b64url_decode(k["x"].as_str().unwrap());
        assert_eq!(x.len(), 32);
        assert_eq!(
            key::kid_for(&x.try_into().unwrap()),
            k["kid"].as_str().unwrap()
        );
    }
}

fn b64url_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

#[test]
fn another_process_rotation_is_seen_after_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let server = KeyStore::open(tmp.path()).unwrap();
    let cli = KeyStore::open(tmp.path()).unwrap();
    let new = cli.rotate(system_now(), TTL).unwrap();
    assert_ne!(server.current_kid(), new, "not before a reload");
    server.reload().unwrap();
    assert_eq!(server.current_kid(), new);
}

#[test]
fn a_stale_snapshot_is_reloaded_after_the_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let server = KeyStore::open_with(tmp.path(), Duration::from_millis(50)).unwrap();
    let cli = KeyStore::open(tmp.path()).unwrap();
    let new = cli.rotate(system_now(), TTL).unwrap();
    server.reload_if_stale();
    assert_ne!(server.current_kid(), new, "too early");
    thread::sleep(Duration::from_millis(60));
    server.reload_if_stale();
    assert_eq!(server.current_kid(), new);
}

#[test]
fn an_unknown_kid_reload_is_rate_limited() {
    let tmp = tempfile::tempdir().unwrap();
    let server = KeyStore::open(tmp.path()).unwrap();
    let cli = KeyStore::open(tmp.path()).unwrap();
    let first = cli.rotate(system_now(), TTL).unwrap();
    server.reload_after_unknown_kid();
    assert_eq!(server.current_kid(), first);
    let second = cli.rotate(system_now(), TTL).unwrap();
    server.reload_after_unknown_kid();
    assert_eq!(
        server.current_kid(),
        first,
        "a second miss right away does not re-read"
    );
    server.reload().unwrap();
    assert_eq!(server.current_kid(), second);
}

#[test]
fn a_broken_directory_keeps_the_keys_loaded_before() {
    let tmp = tempfile::tempdir().unwrap();
    let server = KeyStore::open_with(tmp.path(), Duration::ZERO).unwrap();
    let kid = server.current_kid();
    fs::write(tmp.path().join(KEYS_FILE), b"{ not json").unwrap();
    assert!(matches!(server.reload(), Err(KeyError::Malformed { .. })));
    server.reload_if_stale();
    assert_eq!(server.current_kid(), kid);
}

#[test]
fn malformed_metadata_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    KeyStore::open(tmp.path()).unwrap();
    let path = tmp.path().join(KEYS_FILE);
    let traversal = r#"{"version":1,"current":"../x","keys":[{"kid":"../x","created_at_ms":0}]}"#;
    let dangling = r#"{"version":1,"current":"abc","keys":[{"kid":"def","created_at_ms":0}]}"#;
    for bad in ["", "{}", "[]", traversal, dangling] {
        fs::write(&path, bad).unwrap();
        let err = KeyStore::open(tmp.path()).unwrap_err();
        assert!(matches!(err, KeyError::Malformed { .. }), "{bad}: {err}");
    }
}

#[test]
fn a_current_key_file_that_is_not_a_key_is_refused_without_echoing_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = KeyStore::open(tmp.path()).unwrap();
    let pem = tmp.path().join(format!("{}.pem", store.current_kid()));
    fs::write(
        &pem,
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXN0dWZm\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = KeyStore::open(tmp.path()).unwrap_err();
    assert!(matches!(err, KeyError::Malformed { .. }));
    assert!(!err.to_string().contains("c2VjcmV0"), "{err}");
}

#[test]
fn a_short_refresh_secret_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    KeyStore::open(tmp.path()).unwrap();
    fs::write(tmp.path().join(SECRET_FILE), [1u8; 16]).unwrap();
    assert!(matches!(
        KeyStore::open(tmp.path()),
        Err(KeyError::Malformed { .. })
    ));
}

#[test]
fn a_key_placed_by_an_operator_is_adopted() {
    let source = tempfile::tempdir().unwrap();
    let original = KeyStore::open(source.path()).unwrap();
    let kid = original.current_kid();

    let tmp = tempfile::tempdir().unwrap();
    fs::copy(
        source.path().join(format!("{kid}.pem")),
        tmp.path().join("my-key.pem"),
    )
    .unwrap();
    let adopted = KeyStore::open(tmp.path()).unwrap();
    assert_eq!(adopted.current_kid(), "my-key");
    let now = system_now();
    let jwks = |s: &KeyStore| s.jwks_at(now, Duration::ZERO)["keys"][0]["x"].clone();
    assert_eq!(jwks(&adopted), jwks(&original));
}

#[test]
fn keys_retired_long_ago_are_pruned_at_the_next_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let store = KeyStore::open(tmp.path()).unwrap();
    let first = store.current_kid();
    let second = store.rotate(t(0), TTL).unwrap();
    let much_later = t(0)
        .plus(TTL)
        .plus(RELOAD_INTERVAL)
        .plus(PRUNE_AFTER)
        .plus(MIN);
    let third = store.rotate(much_later, TTL).unwrap();
    let kids: Vec<_> = read_metadata(tmp.path())
        .unwrap()
        .keys
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, vec![second.clone(), third.clone()]);
    assert_eq!(pem_files(tmp.path()), {
        let mut v = vec![format!("{second}.pem"), format!("{third}.pem")];
        v.sort();
        v
    });
    assert!(!pem_files(tmp.path()).contains(&format!("{first}.pem")));
}

#[test]
fn a_stale_lock_left_by_a_dead_process_is_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    let lock = tmp.path().join(".keys.lock");
    fs::write(&lock, b"12345").unwrap();
    let old = SystemTime::now() - Duration::from_secs(120);
    fs::File::options()
        .write(true)
        .open(&lock)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let store = KeyStore::open(tmp.path()).unwrap();
    assert!(!store.current_kid().is_empty());
    assert!(!lock.exists());
}

#[test]
fn debug_output_shows_kids_but_no_key_material() {
    let tmp = tempfile::tempdir().unwrap();
    let store = KeyStore::open(tmp.path()).unwrap();
    let shown = format!("{store:?}");
    assert!(shown.contains(&store.current_kid()));
    let pem = fs::read_to_string(tmp.path().join(format!("{}.pem", store.current_kid()))).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!shown.contains(&body[..20]), "{shown}");
    assert!(!shown.contains("secret"), "{shown}");
}

#[test]
fn the_wall_clock_jwks_honours_the_signers_leeway() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(KeyStore::open(tmp.path()).unwrap());
    let old = store.current_kid();
    // Retired so that its tokens expired 10 s ago.
    let rotated_at = system_now()
        .minus(RELOAD_INTERVAL)
        .minus(Duration::from_secs(10));
    let new = store.rotate(rotated_at, Duration::ZERO).unwrap();
    let kids = |s: &KeyStore| -> Vec<String> {
        s.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(kids(&store), vec![new.clone()]);

    let config = crate::JwtConfig {
        issuer: "i".into(),
        audience: "a".into(),
        leeway: Duration::from_secs(30),
    };
    let _signer = crate::JwtSigner::new(Arc::clone(&store), config);
    assert_eq!(
        kids(&store),
        vec![new, old],
        "kept for the verifier's leeway"
    );
}
