//! Key files OpenSSL reads, `keys import`, `keys list`.

use std::process::Command;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, PrivateKeyInfoRef};
use ed25519_dalek::SigningKey;

use super::*;

const TTL: Duration = Duration::from_secs(15 * 60);

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn pem_of(dir: &Path, kid: &str) -> String {
    fs::read_to_string(dir.join(key::pem_file_name(kid))).unwrap()
}

/// Everything in the directory, to show that a refused import changed nothing.
fn snapshot_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// A key as earlier versions wrote it: PKCS#8 v2, with the public key.
fn v2_pem(signing: &SigningKey) -> String {
    signing.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
}

#[test]
fn written_keys_are_pkcs8_v1_without_the_public_key() {
    let tmp = tempfile::tempdir().unwrap();
    let store = KeyStore::open(tmp.path()).unwrap();
    let rotated = store.rotate(t(1_000), TTL).unwrap();
    for kid in [
        store.list(t(1_000), Duration::ZERO).unwrap()[1].kid.clone(),
        rotated,
    ] {
        let pem = pem_of(tmp.path(), &kid);
        let (label, der) = ed25519_dalek::pkcs8::Document::from_pem(&pem).unwrap();
        assert_eq!(label, "PRIVATE KEY");
        let info = PrivateKeyInfoRef::try_from(der.as_bytes()).unwrap();
        // version INTEGER 0 (v1) right after the SEQUENCE header.
        assert_eq!(der.as_bytes()[2..5], [0x02, 0x01, 0x00]);
        assert!(info.public_key.is_none());
        // Still the key the kid names.
        let signing = SigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(key::kid_for(&signing.verifying_key().to_bytes()), kid);
    }
}

#[test]
fn openssl_reads_the_key_files() {
    let tmp = tempfile::tempdir().unwrap();
    let store = KeyStore::open(tmp.path()).unwrap();
    let path = tmp.path().join(key::pem_file_name(&store.current_kid()));
    let out = Command::new("openssl")
        .args(["pkey", "-noout", "-text", "-in"])
        .arg(&path)
        .output()
        .expect("openssl must be installed to run this test");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("ED25519 Private-Key"), "{text}");
}

#[test]
fn a_key_file_written_by_earlier_versions_still_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let store = KeyStore::open(tmp.path()).unwrap();
    let kid = store.current_kid();
    let signing = SigningKey::from_pkcs8_pem(&pem_of(tmp.path(), &kid)).unwrap();
    fs::write(tmp.path().join(key::pem_file_name(&kid)), v2_pem(&signing)).unwrap();
    let reopened = KeyStore::open(tmp.path()).unwrap();
    assert_eq!(reopened.current_kid(), kid);
    assert_eq!(
        reopened.jwks_at(t(0), Duration::ZERO),
        store.jwks_at(t(0), Duration::ZERO)
    );
}

#[test]
fn an_imported_key_becomes_current_and_the_previous_one_stays_published() {
    let tmp = tempfile::tempdir().unwrap();
    let store = KeyStore::open(tmp.path()).unwrap();
    let previous = store.current_kid();
    let operator = SigningKey::from_bytes(&rand::random());
    let expected = key::kid_for(&operator.verifying_key().to_bytes());

    let kid = store
        .import(
            Path::new("op.pem"),
            v2_pem(&operator).as_bytes(),
            t(10_000),
            TTL,
        )
        .unwrap();

    assert_eq!(kid, expected);
    assert_eq!(store.current_kid(), kid);
    let stored = SigningKey::from_pkcs8_pem(&pem_of(tmp.path(), &kid)).unwrap();
    assert_eq!(stored.to_bytes(), operator.to_bytes());
    let list = store.list(t(10_000), Duration::ZERO).unwrap();
    let states: Vec<_> = list.iter().map(|k| (k.kid.as_str(), k.state)).collect();
    assert_eq!(
        states,
        vec![
            (kid.as_str(), KeyState::Current),
            (previous.as_str(), KeyState::Published)
        ]
    );
    let expire_by = t(10_000).plus(TTL).plus(RELOAD_INTERVAL);
    assert_eq!(list[1].retired_at, Some(t(10_000)));
    assert_eq!(list[1].tokens_expire_by, Some(expire_by));
    assert_eq!(list[0].created_at, t(10_000));
    // Past the retired key's window (plus leeway) it is listed as expired.
    let later = store
        .list(
            expire_by.plus(Duration::from_secs(6)),
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(later[1].state, KeyState::Expired);
    let at_edge = store
        .list(
            expire_by.plus(Duration::from_secs(5)),
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(at_edge[1].state, KeyState::Published);
}

#[test]
fn a_key_generated_by_openssl_can_be_imported() {
    let tmp = tempfile::tempdir().unwrap();
    let store = KeyStore::open(tmp.path()).unwrap();
    let out = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519"])
        .output()
        .expect("openssl must be installed to run this test");
    assert!(out.status.success());
    let kid = store
        .import(Path::new("op.pem"), &out.stdout, t(1), TTL)
        .unwrap();
    assert_eq!(store.current_kid(), kid);
}

#[test]
fn an_invalid_key_is_refused_and_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = KeyStore::open(tmp.path()).unwrap();
    let kid = store.current_kid();
    let before = snapshot_files(tmp.path());
    let rsa_like = "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEA\n-----END PRIVATE KEY-----\n";
    let public_only = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
    let inputs: [&[u8]; 5] = [
        b"",
        b"not a key",
        &[0xff, 0xfe, 0x00],
        rsa_like.as_bytes(),
        public_only.as_bytes(),
    ];
    for bad in inputs {
        let err = store
            .import(Path::new("bad.pem"), bad, t(1), TTL)
            .unwrap_err();
        assert!(matches!(err, KeyError::InvalidImport { .. }), "{err}");
        assert!(err.to_string().contains("bad.pem"), "{err}");
        assert_eq!(snapshot_files(tmp.path()), before);
        assert_eq!(store.current_kid(), kid);
    }
}

#[test]
fn importing_a_key_the_directory_holds_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = KeyStore::open(tmp.path()).unwrap();
    let kid = store.current_kid();
    let before = snapshot_files(tmp.path());
    let err = store
        .import(
            Path::new("same.pem"),
            pem_of(tmp.path(), &kid).as_bytes(),
            t(1),
            TTL,
        )
        .unwrap_err();
    assert!(
        matches!(err, KeyError::AlreadyPresent { kid: ref k } if *k == kid),
        "{err}"
    );
    assert_eq!(snapshot_files(tmp.path()), before);
}
