#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret as _;

use super::*;
use crate::config_file::{parse_from, Parsed};

#[derive(Parser, Debug)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    #[arg(long, env = "TOKENWARDEN_CONFIG", global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    Serve(Settings),
}

/// The configuration of `serve` with `args`, or the error as `main`
/// reports it (naming where the value came from).
fn parse(args: &[&str]) -> Result<Config, ConfigError> {
    let parsed: Parsed<Cli> = parse_from(
        ["tokenwarden", "serve"]
            .iter()
            .chain(args)
            .map(OsString::from)
            .collect(),
    )?;
    let Cmd::Serve(settings) = &parsed.cli.command;
    Config::from_settings(settings.clone()).map_err(|e| parsed.locate(e))
}

#[test]
fn the_public_url_is_an_absolute_http_url_kept_without_its_trailing_slash() {
    let ok = |v: &str| parse(&["--public-url", v]).unwrap().public_url;
    assert_eq!(
        ok("https://auth.example.com/"),
        Some("https://auth.example.com".into())
    );
    assert_eq!(
        ok("http://127.0.0.1:8080"),
        Some("http://127.0.0.1:8080".into())
    );
    assert_eq!(
        ok("https://example.com/auth/"),
        Some("https://example.com/auth".into())
    );
    assert_eq!(parse(&[]).unwrap().public_url, None);
    for bad in [
        "",
        "auth.example.com",
        "ftp://x",
        "https://u:p@x",
        "https://x/?a=1",
        "https://x/#f",
    ] {
        let e = parse(&["--public-url", bad]).unwrap_err();
        assert_eq!(e.setting, "TOKENWARDEN_PUBLIC_URL", "{bad}");
    }
}

#[test]
fn a_bad_flag_value_names_the_flag_on_one_line() {
    let e = parse(&["--access-token-ttl", "soon"]).unwrap_err();
    assert_eq!(e.setting, "TOKENWARDEN_ACCESS_TOKEN_TTL");
    assert_eq!(e.origin.as_deref(), Some("--access-token-ttl"));
    assert!(
        e.to_string()
            .starts_with("invalid --access-token-ttl: 'soon'"),
        "{e}"
    );
    assert!(!e.to_string().contains('\n'));
    let e = parse(&["--access-token-ttl=0s"]).unwrap_err();
    assert_eq!(e.origin.as_deref(), Some("--access-token-ttl"), "{e}");
    for (flag, value, setting) in [
        ("--reuse-response", "shrug", "TOKENWARDEN_REUSE_RESPONSE"),
        ("--registration", "invite-only", "TOKENWARDEN_REGISTRATION"),
        ("--database-url", "mysql://x", "DATABASE_URL"),
        (
            "--trusted-proxies",
            "10.0.0.0/99",
            "TOKENWARDEN_TRUSTED_PROXIES",
        ),
        (
            "--login-rate-user",
            "5/fortnight",
            "TOKENWARDEN_LOGIN_RATE_USER",
        ),
        ("--bind", "nowhere", "TOKENWARDEN_BIND"),
        ("--cookie-secure", "maybe", "TOKENWARDEN_COOKIE_SECURE"),
        ("--log-format", "xml", "TOKENWARDEN_LOG_FORMAT"),
        ("--dpop", "sometimes", "TOKENWARDEN_DPOP"),
        ("--dpop-max-age", "0s", "TOKENWARDEN_DPOP_MAX_AGE"),
        ("--max-sessions", "0", "TOKENWARDEN_MAX_SESSIONS"),
        ("--db-pool-size", "1001", "TOKENWARDEN_DB_POOL_SIZE"),
        (
            "--allowed-origins",
            "app.example.com",
            "TOKENWARDEN_ALLOWED_ORIGINS",
        ),
        (
            "--introspection-token",
            "short",
            "TOKENWARDEN_INTROSPECTION_TOKEN",
        ),
        ("--webhook-url", "ftp://x", "TOKENWARDEN_WEBHOOK_URL"),
    ] {
        let e = parse(&[flag, value]).unwrap_err();
        assert_eq!(e.setting, setting, "{flag} {value}");
        assert_eq!(e.origin.as_deref(), Some(flag), "{flag} {value}");
    }
    let e = parse(&["--reuse-response", "shrug"]).unwrap_err();
    assert!(e.message.contains("revoke_all, revoke_family"), "{e}");
    assert_eq!(
        parse(&["--registration", "closed"]).unwrap().registration,
        RegistrationPolicy::Closed
    );
}

#[test]
fn the_defaults_are_the_contracts() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.database_url.expose_secret(), "sqlite://tokenwarden.db");
    assert_eq!(c.lifetimes, Lifetimes::default());
    assert_eq!(c.retry_window, domain::RotationPolicy::DEFAULT_RETRY_WINDOW);
    assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(
        c.login_rate_user,
        Rate {
            count: 5,
            per: Duration::from_secs(60)
        }
    );
    assert!(c.cookie_secure);
    assert_eq!(c.reuse_response, ReuseResponse::RevokeAll);
    assert_eq!(c.anomaly_response, AnomalyResponse::RevokeAll);
    assert_eq!(c.registration, RegistrationPolicy::Open);
    assert_eq!(c.dpop, DpopMode::Optional);
    assert_eq!(c.cleanup_interval, Duration::from_secs(300));
    assert_eq!(c.audit_retention, Duration::from_secs(90 * 86_400));
    assert_eq!(c.redis_failure, OnRedisFailure::Fallback);
    assert_eq!(c.redis_timeout, Duration::from_millis(250));
    assert_eq!(c.redis_key_prefix, "tokenwarden:");
    assert!(c.redis_url.is_none());
    assert_eq!(c.keys_dir, PathBuf::from("./keys"));
    assert!(c.introspection_token.is_none() && c.webhook.is_none());
    assert!(c.trusted_proxies.is_empty() && c.allowed_origins.is_empty());
    assert_eq!(c.log_format, LogFormat::Pretty);
}

#[test]
fn the_test_defaults_are_the_command_lines_defaults() {
    let mut parsed = parse(&[]).unwrap();
    let defaults = Config::with_defaults("sqlite://tokenwarden.db", "./keys");
    assert_eq!(defaults.rust_log, "info");
    // `RUST_LOG` may be set where the tests run.
    parsed.rust_log = defaults.rust_log.clone();
    // Config holds secrets (no PartialEq): compare what Debug shows.
    assert_eq!(format!("{defaults:?}"), format!("{parsed:?}"));
}

#[test]
fn the_abuse_limits_default_to_the_contract() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.request_timeout, Duration::from_secs(10));
    assert_eq!(c.keep_alive, Duration::from_secs(30));
    assert_eq!(c.hash_queue, 64);
    assert_eq!(c.max_connections, 10_000);
    assert_eq!(
        c.register_rate_ip,
        Rate {
            count: 10,
            per: Duration::from_secs(3_600)
        }
    );
    assert_eq!(
        c.refresh_fail_rate_ip,
        Rate {
            count: 60,
            per: Duration::from_secs(60)
        }
    );
    for (flag, value) in [
        ("--request-timeout", "0s"),
        ("--keep-alive", "long"),
        ("--max-connections", "0"),
        ("--hash-queue", "none"),
        ("--register-rate-ip", "10"),
        ("--refresh-fail-rate-ip", "0/min"),
    ] {
        assert_eq!(
            parse(&[flag, value]).unwrap_err().origin.as_deref(),
            Some(flag),
            "{flag} {value}"
        );
    }
}

#[test]
fn the_cookie_settings_default_to_the_contract_and_are_validated() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.cookie_path, "/auth");
    assert_eq!(c.cookie_domain, None);
    assert_eq!(c.cookie_same_site, CookieSameSite::Strict);

    let c = parse(&[
        "--cookie-path",
        "/id/auth",
        "--cookie-domain",
        ".Example.com",
        "--cookie-samesite",
        "None",
    ])
    .unwrap();
    assert_eq!(c.cookie_path, "/id/auth");
    assert_eq!(c.cookie_domain.as_deref(), Some("example.com"));
    assert_eq!(c.cookie_same_site, CookieSameSite::None);
    assert_eq!(parse(&["--cookie-domain", ""]).unwrap().cookie_domain, None);

    for (flag, value, setting) in [
        ("--cookie-path", "auth", "TOKENWARDEN_COOKIE_PATH"),
        ("--cookie-path", "/a;b", "TOKENWARDEN_COOKIE_PATH"),
        ("--cookie-path", "/a b", "TOKENWARDEN_COOKIE_PATH"),
        (
            "--cookie-domain",
            "exa mple.com",
            "TOKENWARDEN_COOKIE_DOMAIN",
        ),
        ("--cookie-domain", "a..b", "TOKENWARDEN_COOKIE_DOMAIN"),
        ("--cookie-domain", "x.com;", "TOKENWARDEN_COOKIE_DOMAIN"),
        (
            "--cookie-samesite",
            "sometimes",
            "TOKENWARDEN_COOKIE_SAMESITE",
        ),
        ("--cookie-name", "a b", "TOKENWARDEN_COOKIE_NAME"),
    ] {
        assert_eq!(
            parse(&[flag, value]).unwrap_err().setting,
            setting,
            "{flag} {value}"
        );
    }
}

#[test]
fn same_site_none_without_secure_names_the_flag_that_set_it() {
    let e = parse(&["--cookie-samesite", "none", "--cookie-secure", "false"]).unwrap_err();
    assert_eq!(e.setting, "TOKENWARDEN_COOKIE_SAMESITE");
    assert_eq!(e.origin.as_deref(), Some("--cookie-samesite"));
    assert!(e.to_string().contains("Secure"), "{e}");
    assert!(parse(&["--cookie-samesite", "lax", "--cookie-secure", "false"]).is_ok());
}

#[test]
fn the_revocation_and_cleanup_settings_are_validated() {
    let c = parse(&[
        "--redis-url",
        "redis://cache:6379/2",
        "--redis-failure",
        "fail_closed",
        "--cleanup-interval",
        "30s",
        "--redis-timeout",
        "100ms",
    ])
    .unwrap();
    assert_eq!(c.redis_failure, OnRedisFailure::FailClosed);
    assert_eq!(c.cleanup_interval, Duration::from_secs(30));
    assert_eq!(c.redis_timeout, Duration::from_millis(100));
    assert_eq!(
        c.redis_url.as_ref().map(|u| u.expose_secret()),
        Some("redis://cache:6379/2")
    );
    for (flag, value, setting) in [
        ("--redis-failure", "shrug", "TOKENWARDEN_REDIS_FAILURE"),
        ("--cleanup-interval", "0s", "TOKENWARDEN_CLEANUP_INTERVAL"),
        (
            "--cleanup-interval",
            "often",
            "TOKENWARDEN_CLEANUP_INTERVAL",
        ),
        ("--redis-timeout", "0ms", "TOKENWARDEN_REDIS_TIMEOUT"),
        ("--redis-key-prefix", "a b", "TOKENWARDEN_REDIS_KEY_PREFIX"),
        ("--redis-url", "http://cache", "REDIS_URL"),
    ] {
        assert_eq!(
            parse(&[flag, value]).unwrap_err().setting,
            setting,
            "{flag} {value}"
        );
    }
}

#[test]
fn webhooks_need_both_url_and_secret_and_an_empty_value_is_unset() {
    let secret = "a-webhook-secret-of-at-least-32-bytes";
    assert!(parse(&[]).unwrap().webhook.is_none());
    assert!(parse(&["--webhook-url", "", "--webhook-secret", ""])
        .unwrap()
        .webhook
        .is_none());
    let c = parse(&[
        "--webhook-url",
        "https://hooks.example.com/tw",
        "--webhook-secret",
        secret,
    ]);
    assert!(c.unwrap().webhook.is_some());
    let e = parse(&["--webhook-url", "https://hooks.example.com/tw"]).unwrap_err();
    assert_eq!(e.setting, "TOKENWARDEN_WEBHOOK_SECRET");
    assert_eq!(e.origin, None, "an unset setting has no source");
    let e = parse(&["--webhook-secret", secret]).unwrap_err();
    assert_eq!(e.setting, "TOKENWARDEN_WEBHOOK_URL");
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let c = parse(&[
        "--database-url",
        "postgres://tw:db-s3cret@db/tw",
        "--introspection-token",
        "introspection-secret-0123456789",
    ])
    .unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("db-s3cret"), "{shown}");
    assert!(!shown.contains("introspection-secret"), "{shown}");
    assert_eq!(
        c.database_url.expose_secret(),
        "postgres://tw:db-s3cret@db/tw"
    );
}

#[test]
fn urls_that_carry_passwords_never_show_them_in_debug_output() {
    let c = parse(&[
        "--database-url",
        "postgres://tw:db-hunter2@db/tw",
        "--redis-url",
        "redis://:redis-hunter2@cache:6379/0",
    ])
    .unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("db-hunter2"), "{shown}");
    assert!(!shown.contains("redis-hunter2"), "{shown}");
    assert_eq!(
        c.redis_url.as_ref().map(|u| u.expose_secret()),
        Some("redis://:redis-hunter2@cache:6379/0")
    );
}
