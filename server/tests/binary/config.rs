//! The settings as the binary takes them: each subcommand's `--help` lists
//! only the settings it uses, a bad value is named by the flag, variable or
//! file key that held it, and `config check` reaches the database and Redis
//! and looks at the keys directory, naming the check that failed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;

use persistence::testing::TestDatabase;

use crate::support::{bin, tokenwarden};

fn help(args: &[&str]) -> String {
    let out = std::process::Command::new(bin())
        .env_clear()
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The flags of settings (those with an environment variable) in `help`.
fn settings_in(help: &str) -> Vec<String> {
    let lines: Vec<&str> = help.lines().collect();
    let mut flags = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(flag) = line.trim_start().strip_prefix("--") else {
            continue;
        };
        let flag = flag.split([' ', '=']).next().unwrap_or_default();
        let described = lines[i + 1..]
            .iter()
            .take_while(|l| !l.trim_start().starts_with("--"))
            .any(|l| l.contains("[env: "));
        if described && flag != "config" {
            flags.push(flag.to_owned());
        }
    }
    flags
}

#[test]
fn each_subcommand_lists_only_the_settings_it_uses() {
    let database = ["database-url", "db-pool-size", "dependency-timeout"];
    let log = ["log", "log-format"];
    let access = ["access-token-ttl", "clock-leeway"];
    let redis = [
        "redis-url",
        "redis-failure",
        "redis-timeout",
        "redis-key-prefix",
    ];
    let db_only: Vec<&str> = database.iter().chain(&log).copied().collect();
    let keys: Vec<&str> = ["keys-dir"]
        .iter()
        .chain(&access)
        .chain(&log)
        .copied()
        .collect();
    let revoking: Vec<&str> = database
        .iter()
        .chain(&redis)
        .chain(&access)
        .chain(&log)
        .copied()
        .collect();
    let cleanup: Vec<&str> = database
        .iter()
        .chain(&["audit-retention"])
        .chain(&log)
        .copied()
        .collect();
    for (command, expected) in [
        (&["migrate"][..], &db_only),
        (&["user", "list"], &db_only),
        (&["user", "create"], &db_only),
        (&["user", "enable"], &db_only),
        (&["user", "disable"], &revoking),
        (&["user", "set-password"], &revoking),
        (&["user", "roles"], &revoking),
        (&["user", "delete"], &revoking),
        (&["keys", "list"], &keys),
        (&["keys", "rotate"], &keys),
        (&["keys", "import"], &keys),
        (&["cleanup"], &cleanup),
    ] {
        let mut listed = settings_in(&help(command));
        listed.sort();
        let mut expected = expected.clone();
        expected.sort_unstable();
        assert_eq!(listed, expected, "tokenwarden {command:?} --help");
    }
    let serve = settings_in(&help(&["serve"]));
    assert!(serve.len() >= 45, "{serve:?}");
    for flag in [
        "bind",
        "keys-dir",
        "redis-url",
        "webhook-secret",
        "cookie-samesite",
    ] {
        assert!(serve.iter().any(|f| f == flag), "serve lacks --{flag}");
    }
    assert_eq!(settings_in(&help(&["config", "check"])), serve);
}

#[test]
fn a_setting_a_subcommand_does_not_take_is_refused_as_a_flag() {
    let out = tokenwarden("sqlite://unused.db", Path::new("unused"))
        .args(["user", "list", "--bind", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bind"));
}

fn stderr_line(out: &Output) -> String {
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn a_bad_value_is_named_where_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let from_flag = tokenwarden("sqlite://unused.db", &keys)
        .args(["serve", "--access-token-ttl", "soon"])
        .output()
        .unwrap();
    let line = stderr_line(&from_flag);
    assert!(
        line.contains("invalid --access-token-ttl: 'soon'"),
        "{line}"
    );

    let from_env = tokenwarden("sqlite://unused.db", &keys)
        .arg("serve")
        .env("TOKENWARDEN_ACCESS_TOKEN_TTL", "soon")
        .output()
        .unwrap();
    let line = stderr_line(&from_env);
    assert!(
        line.contains("invalid TOKENWARDEN_ACCESS_TOKEN_TTL: 'soon'"),
        "{line}"
    );

    let file = dir.path().join("tokenwarden.toml");
    std::fs::write(&file, "access_token_ttl = \"soon\"\n").unwrap();
    let from_file = tokenwarden("sqlite://unused.db", &keys)
        .arg("serve")
        .env("TOKENWARDEN_CONFIG", &file)
        .output()
        .unwrap();
    let line = stderr_line(&from_file);
    let expected = format!("invalid access_token_ttl in {}: 'soon'", file.display());
    assert!(line.contains(&expected), "{line}");

    // Settings that only fail together name the one that was given.
    let combined = tokenwarden("sqlite://unused.db", &keys)
        .args(["serve", "--cookie-samesite", "none"])
        .env("TOKENWARDEN_COOKIE_SECURE", "false")
        .output()
        .unwrap();
    let line = stderr_line(&combined);
    assert!(
        line.contains("invalid --cookie-samesite: none requires"),
        "{line}"
    );

    // A secret's value is never repeated.
    let secret = tokenwarden("sqlite://unused.db", &keys)
        .arg("serve")
        .env("TOKENWARDEN_INTROSPECTION_TOKEN", "too-short-tok")
        .output()
        .unwrap();
    let line = stderr_line(&secret);
    assert!(line.contains("TOKENWARDEN_INTROSPECTION_TOKEN"), "{line}");
    assert!(!line.contains("too-short-tok"), "{line}");
}

fn check(db: &str, keys: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = tokenwarden(db, keys);
    cmd.args(["config", "check"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `config check`'s failure line (its last line on stderr).
fn failure(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn config_check_connects_to_the_database_and_redis_and_looks_at_the_keys() {
    let db = TestDatabase::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();

    let ok = check(db.url(), &keys, &[]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains("# database (DATABASE_URL): ok"), "{stdout}");
    assert!(
        stdout.contains("# redis (REDIS_URL): ok, not configured"),
        "{stdout}"
    );
    assert!(
        stdout.contains("# keys (TOKENWARDEN_KEYS_DIR): ok"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_dir(&keys).unwrap().count(),
        0,
        "the check wrote no key"
    );

    let line = failure(&check("postgres://nobody@127.0.0.1:1/none", &keys, &[]));
    assert!(
        line.contains("config check failed: database (DATABASE_URL)"),
        "{line}"
    );

    let line = failure(&check(
        db.url(),
        &keys,
        &[("REDIS_URL", "redis://:redis-s3cret@127.0.0.1:1")],
    ));
    assert!(
        line.contains("config check failed: redis (REDIS_URL)"),
        "{line}"
    );
    assert!(!line.contains("redis-s3cret"), "{line}");

    let missing = dir.path().join("missing");
    let line = failure(&check(db.url(), &missing, &[]));
    assert!(
        line.contains("config check failed: keys (TOKENWARDEN_KEYS_DIR)")
            && line.contains("does not exist"),
        "{line}"
    );
    assert!(!missing.exists());

    // What the systemd unit runs: a Redis outage must not block a start.
    let mut cmd = tokenwarden(db.url(), &keys);
    let skipped = cmd
        .args(["config", "check", "--skip", "redis"])
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(skipped.status.success());
    assert!(!String::from_utf8_lossy(&skipped.stdout).contains("# redis"));
}

#[test]
fn config_check_reaches_a_live_redis() {
    let Some(redis) = redis_revocation::testing::test_redis_url() else {
        return;
    };
    let db = TestDatabase::sqlite();
    let keys = tempfile::tempdir().unwrap();
    let out = check(db.url(), keys.path(), &[("REDIS_URL", &redis)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("# redis (REDIS_URL): ok, connected"),
        "{stdout}"
    );
}
