use std::time::{Duration, Instant};

use application::ports::StoreError;

use crate::common::*;

fn refused(url: &str) -> StoreError {
    Database::connect(url, 2).unwrap_err()
}

#[test]
fn an_unreachable_postgres_fails_fast_naming_the_setting_without_the_password() {
    let started = Instant::now();
    // Port 1 on localhost: nothing listens there.
    let err = refused("postgres://tw:s3cret-pw@127.0.0.1:1/tokenwarden");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.0.contains("DATABASE_URL"), "{err}");
    assert!(!err.0.contains("s3cret-pw"), "{err}");
}

#[test]
fn a_sqlite_file_that_cannot_be_created_is_refused_naming_the_setting() {
    let err = refused("sqlite:///nonexistent-directory/for/tokenwarden.db");
    assert!(err.0.contains("DATABASE_URL"), "{err}");
}

#[test]
fn unsupported_urls_and_an_empty_pool_are_refused() {
    for url in [
        "mysql://root@localhost/tw",
        "tokenwarden.db",
        "sqlite://",
        "",
    ] {
        assert!(refused(url).0.contains("DATABASE_URL"), "{url}");
    }
    let db = TestDatabase::sqlite();
    assert!(Database::connect(db.url(), 0).is_err());
}

#[test]
fn a_relative_sqlite_path_is_relative_to_the_working_directory() {
    // `sqlite://name` and `sqlite:///abs/name` name the same file when the
    // working directory is `/abs`; checked without changing the process's
    // working directory (tests run in parallel): the absolute form works and
    // creates the file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tw.db");
    let db = Database::connect(&format!("sqlite://{}", path.display()), 1).unwrap();
    db.ping().unwrap();
    assert!(path.exists());
}

on_both_backends!(ping_answers_and_handles_are_cheap_to_share);

fn ping_answers_and_handles_are_cheap_to_share(db: &TestDatabase) {
    fn shareable<T: Clone + Send + Sync + 'static>(_: &T) {}
    let db = db.open(2);
    shareable(&db);
    db.ping().unwrap();
    let clone = db.clone();
    std::thread::spawn(move || clone.ping().unwrap())
        .join()
        .unwrap();
    // Migrating again is a no-op.
    assert_eq!(db.run_migrations().unwrap(), 0);
}

/// Commits only append to SQLite's write-ahead log; a thread of the
/// `Database` copies it into the database file (requests would do so only
/// past 10 000 pages of log).
#[test]
fn a_thread_copies_the_sqlite_log_into_the_database_file() {
    let test_db = TestDatabase::sqlite();
    let db = test_db.open(2);
    let file = std::path::PathBuf::from(test_db.url().strip_prefix("sqlite://").unwrap());
    let size = || std::fs::metadata(&file).unwrap().len();
    std::thread::sleep(Duration::from_millis(300));
    let before = size();
    // About 5 MB of rows in one commit: some 1 200 pages of log.
    let user = domain::UserId::from_random_bytes([9; 16]);
    let attempts: Vec<_> = (0..20_000)
        .map(|i| domain::RefreshAttempt {
            at: at(i),
            outcome: domain::RefreshOutcome::Success,
            user_id: Some(user),
            session_id: None,
            ip: Some(format!("198.51.100.{}", i % 250)),
            user_agent: Some(format!("{UA} build/{i}")),
            fingerprint: None,
        })
        .collect();
    db.record_refresh_batch(&attempts).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while size() < before + 2_000_000 {
        assert!(
            Instant::now() < deadline,
            "the database file is still {} bytes (was {before}): nothing copied the log",
            size()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
