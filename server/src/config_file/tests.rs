#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::{Parser, Subcommand};

use super::*;
use crate::config::{Config, Settings};

#[derive(Parser, Debug)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    #[arg(long, env = "TOKENWARDEN_CONFIG", global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)]
enum Cmd {
    Serve(Settings),
    /// Takes a few settings only, as most subcommands do.
    Migrate(crate::cli::DatabaseOnly),
}

fn config(parsed: &Parsed<Cli>) -> Result<Config, ConfigError> {
    match &parsed.cli.command {
        Cmd::Serve(settings) => Config::from_settings(settings.clone()),
        Cmd::Migrate(_) => panic!("not serve"),
    }
}

fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("tokenwarden.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn parse(args: &[&str]) -> Result<Parsed<Cli>, ConfigError> {
    parse_from(
        std::iter::once("tokenwarden")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect(),
    )
}

#[test]
fn file_values_beat_defaults_and_flags_beat_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        r#"
access_token_ttl = "5m"
max_sessions = 3
cookie_secure = false
trusted_proxies = ["10.0.0.0/8", "192.168.0.1"]
issuer = "from-file"
"#,
    );
    let path = path.to_str().unwrap();
    let parsed = parse(&["serve", "--config", path, "--issuer", "from-flag"]).unwrap();
    let config = config(&parsed).unwrap();
    assert_eq!(
        config.lifetimes.access_ttl,
        std::time::Duration::from_secs(300)
    );
    assert_eq!(config.lifetimes.max_sessions, 3);
    assert!(!config.cookie_secure);
    assert_eq!(config.trusted_proxies.len(), 2);
    assert_eq!(config.issuer, "from-flag");
    assert_eq!(
        config.audience, "tokenwarden",
        "untouched settings keep their default"
    );

    let printed = parsed.render_effective();
    assert!(
        printed.contains(r#"access_token_ttl = "5m"  # file"#),
        "{printed}"
    );
    assert!(
        printed.contains(r#"issuer = "from-flag"  # flag"#),
        "{printed}"
    );
    assert!(
        printed.contains(r#"audience = "tokenwarden"  # default"#),
        "{printed}"
    );
}

#[test]
fn the_config_flag_may_come_before_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "audience = \"api\"\n");
    let parsed = parse(&["--config", path.to_str().unwrap(), "serve"]).unwrap();
    assert_eq!(config(&parsed).unwrap().audience, "api");
}

#[test]
fn unknown_keys_tables_and_bad_toml_name_the_file_setting_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for text in [
        "acess_token_ttl = \"5m\"\n",
        "[server]\nbind = \"x\"\n",
        "bind = { host = \"x\" }\n",
        "bind = \n",
        "issuer = \"unterminated\n",
    ] {
        let path = write(&dir, text);
        let e = parse(&["serve", "--config", path.to_str().unwrap()]).unwrap_err();
        assert_eq!(e.setting, CONFIG_SETTING, "{text}");
        assert!(!e.to_string().contains('\n'), "{e}");
    }
    let e = parse(&["serve", "--config", "/nonexistent/tokenwarden.toml"]).unwrap_err();
    assert_eq!(e.setting, CONFIG_SETTING);
}

#[test]
fn a_bad_value_from_the_file_names_the_files_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "reuse_response = \"shrug\"\n");
    let e = parse(&["serve", "--config", path.to_str().unwrap()]).unwrap_err();
    assert_eq!(e.setting, "TOKENWARDEN_REUSE_RESPONSE");
    let origin = format!("reuse_response in {}", path.display());
    assert_eq!(e.origin.as_deref(), Some(origin.as_str()));
    assert!(
        e.to_string()
            .starts_with(&format!("invalid {origin}: 'shrug'")),
        "{e}"
    );
    // A flag over the bad file value wins, and is all that is parsed.
    let parsed = parse(&[
        "serve",
        "--config",
        path.to_str().unwrap(),
        "--reuse-response",
        "revoke_family",
    ])
    .unwrap();
    assert!(config(&parsed).is_ok());
}

#[test]
fn a_bad_value_from_the_file_that_the_flag_overrides_is_named_by_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "access_token_ttl = \"5m\"\n");
    let e = parse(&[
        "serve",
        "--config",
        path.to_str().unwrap(),
        "--access-token-ttl",
        "soon",
    ])
    .unwrap_err();
    assert_eq!(e.origin.as_deref(), Some("--access-token-ttl"));
}

#[test]
fn one_file_serves_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    // `keys_dir` and `bind` are no settings of `migrate`: still accepted.
    let path = write(
        &dir,
        "keys_dir = \"/var/lib/tw/keys\"\nbind = \"0.0.0.0:80\"\ndb_pool_size = 4\n",
    );
    let parsed = parse(&["migrate", "--config", path.to_str().unwrap()]).unwrap();
    let Cmd::Migrate(settings) = &parsed.cli.command else {
        panic!("not migrate")
    };
    assert_eq!(settings.database.db_pool_size, 4);
    let printed = parsed.render_effective();
    assert!(
        printed.contains("db_pool_size = \"4\"  # file"),
        "{printed}"
    );
    assert!(!printed.contains("keys_dir"), "{printed}");
    assert!(!printed.contains("bind"), "{printed}");
}

#[test]
fn secrets_are_redacted() {
    assert_eq!(
        redact_url("postgres://tw:s3cret@db.internal:5432/tw?sslmode=require"),
        "postgres://tw:<redacted>@db.internal:5432/tw?sslmode=require"
    );
    assert_eq!(
        redact_url("redis://:hunter2@cache:6379/0"),
        "redis://:<redacted>@cache:6379/0"
    );
    assert_eq!(
        redact_url("postgres://db/tw?user=tw&password=s3cret"),
        "postgres://db/tw?user=tw&password=<redacted>"
    );
    assert_eq!(
        redact_url("sqlite://tokenwarden.db"),
        "sqlite://tokenwarden.db"
    );
    assert_eq!(redact_url("postgres://tw@db/tw"), "postgres://tw@db/tw");
    assert_eq!(
        redact_url("sqlite://./data dir/tw.db"),
        "sqlite://./data dir/tw.db",
        "printed as given"
    );
    assert_eq!(redact_url("postgres://tw:s3cret@db:port/tw"), "<redacted>");
    assert_eq!(
        redact("introspection_token", "0123456789abcdef"),
        "<redacted>"
    );
    assert_eq!(redact("issuer", "tokenwarden"), "tokenwarden");

    let parsed = parse(&[
        "serve",
        "--database-url",
        "postgres://tw:s3cret@db/tw",
        "--introspection-token",
        "a-very-secret-introspection-token",
        "--redis-url",
        "redis://:hunter2@cache:6379",
    ])
    .unwrap();
    let printed = parsed.render_effective();
    for secret in ["s3cret", "a-very-secret-introspection-token", "hunter2"] {
        assert!(!printed.contains(secret), "{printed}");
    }
    assert!(
        printed.contains("introspection_token = \"<redacted>\""),
        "{printed}"
    );
}

#[test]
fn the_printed_configuration_reads_back_as_a_settings_file() {
    let parsed = parse(&["serve", "--bind", "127.0.0.1:9999"]).unwrap();
    let printed = parsed.render_effective();
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, &printed);
    let again = parse(&["serve", "--config", path.to_str().unwrap()]).unwrap();
    assert_eq!(config(&again).unwrap().bind.to_string(), "127.0.0.1:9999");
}
