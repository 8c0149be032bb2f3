//! `tokenwarden`: serve, migrate, manage users, rotate keys, check config.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use application::cleanup::CleanupRun;
use application::RegisterInput;
use domain::{Role, Roles, Username};
use server::cleanup::cleanup_service;
use server::startup::{build_warden, open_database, open_keys};
use server::{commands, config_file, telemetry, user_commands, Application, Config, RawSettings};

#[derive(Parser)]
#[command(
    name = "tokenwarden",
    version,
    about = "Refresh-token service: rotation, reuse detection, revocation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// A TOML file of settings (keys as `tokenwarden config check` prints
    /// them); flags and environment variables override it.
    #[arg(long, env = "TOKENWARDEN_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: RawSettings,
}

#[derive(Subcommand)]
enum Command {
    /// Run pending migrations, then serve HTTP until SIGTERM/SIGINT.
    Serve,
    /// Run pending migrations and exit.
    Migrate,
    /// Remove expired refresh tokens, sessions past their absolute lifetime,
    /// expired revocation entries and audit rows past the retention, once;
    /// print what was removed per table.
    Cleanup,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new Ed25519 key current; the previous one stays published
    /// until every token it signed has expired. Running servers pick the
    /// new key up within 60 s.
    Rotate,
    /// Add an operator's Ed25519 private key (PKCS#8 PEM, as `openssl
    /// genpkey -algorithm ed25519` writes it) and make it current; the
    /// previous key stays published until every token it signed has expired.
    Import {
        /// The PEM file to import.
        file: PathBuf,
    },
    /// Print every key of the keys directory: kid, state (current,
    /// published, expired), created, retired, tokens expire by.
    List,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print it (secrets redacted).
    Check,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create {
        username: String,
        /// A role to grant (repeatable); default `user`.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Read the password from standard input (required: never from argv).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users (id, username, roles, state, created, last login).
    List {
        /// Only usernames starting with this (any letter case).
        #[arg(long)]
        query: Option<String>,
    },
    /// Set a user's password, read from standard input; every session of
    /// the user is revoked.
    SetPassword {
        username: String,
        /// Read the password from standard input (required: never from argv).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Replace a user's roles; taking a role away revokes every session.
    Roles {
        username: String,
        /// A role (repeatable, at least one).
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Disable a user: every session revoked, logins refused.
    Disable { username: String },
    /// Enable a disabled user again.
    Enable { username: String },
    /// Delete a user with their sessions and tokens (the audit trail stays
    /// until its retention).
    Delete { username: String },
}

fn main() -> ExitCode {
    let parsed = match config_file::parse::<Cli>() {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let cli = &parsed.cli;
    let config = match Config::from_raw(&cli.settings) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    telemetry::init(&config.rust_log, config.log_format);
    let result = match &cli.command {
        Command::Serve => serve(config),
        Command::Migrate => migrate(&config),
        Command::Cleanup => cleanup(&config),
        Command::User(UserCommand::Create {
            username,
            roles,
            password_stdin,
        }) => create_user(&config, username, roles, *password_stdin),
        Command::User(UserCommand::List { query }) => {
            user_commands::list(&config, query.as_deref())
        }
        Command::User(UserCommand::SetPassword {
            username,
            password_stdin,
        }) => user_commands::set_password(&config, username, *password_stdin),
        Command::User(UserCommand::Roles { username, roles }) => {
            user_commands::set_roles(&config, username, roles)
        }
        Command::User(UserCommand::Disable { username }) => {
            user_commands::set_disabled(&config, username, true)
        }
        Command::User(UserCommand::Enable { username }) => {
            user_commands::set_disabled(&config, username, false)
        }
        Command::User(UserCommand::Delete { username }) => user_commands::delete(&config, username),
        Command::Keys(KeysCommand::Rotate) => commands::rotate_keys(&config),
        Command::Keys(KeysCommand::Import { file }) => commands::import_key(&config, file),
        Command::Keys(KeysCommand::List) => commands::list_keys(&config),
        Command::Config(ConfigCommand::Check) => {
            print!(
                "{}",
                config_file::render_effective::<Cli>(&parsed.matches, parsed.file.as_ref())
            );
            println!("# the configuration is valid");
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&*e),
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("tokenwarden: {e}");
    ExitCode::FAILURE
}

type CmdResult = Result<(), Box<dyn std::error::Error>>;

fn serve(config: Config) -> CmdResult {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(config.clone()).await?;
        tracing::info!(port = app.port(), bind = %config.bind, "tokenwarden listening");
        if let Some(port) = app.metrics_port() {
            tracing::info!(port, "metrics listening");
        }
        app.run_until_stopped().await?;
        tracing::info!("tokenwarden stopped");
        Ok(())
    })
}

fn migrate(config: &Config) -> CmdResult {
    open_database(config)?;
    println!("migrations are up to date");
    Ok(())
}

fn cleanup(config: &Config) -> CmdResult {
    let db = open_database(config)?;
    match cleanup_service(config, &db).run()? {
        CleanupRun::Skipped => {
            println!("another instance is running the cleanup job; nothing removed");
        }
        CleanupRun::Done(report) => {
            println!("refresh_tokens: {}", report.refresh_tokens);
            println!("sessions: {}", report.sessions);
            println!("revocations: {}", report.revocations);
            println!("dpop_proofs: {}", report.dpop_proofs);
            match report.audit_rows {
                Some(n) => println!("audit: {n}"),
                None => println!("audit: 0 (no audit table)"),
            }
            if config.redis_url.is_some() {
                println!("redis: entries expire by themselves (PXAT)");
            }
        }
    }
    Ok(())
}

fn create_user(
    config: &Config,
    username: &str,
    roles: &[String],
    password_stdin: bool,
) -> CmdResult {
    if !password_stdin {
        return Err(
            "user create needs --password-stdin: passwords are never read from the command line"
                .into(),
        );
    }
    let username = Username::parse(username).map_err(|e| format!("invalid username: {e}"))?;
    let roles = if roles.is_empty() {
        Roles::new([Role::user()])
    } else {
        user_commands::parse_roles(roles)?
    };
    let password = user_commands::password_from_stdin()?;
    let db = open_database(config)?;
    let warden = build_warden(config, &db, &open_keys(config)?)?;
    let user = warden
        .register(RegisterInput {
            username,
            password,
            roles,
        })
        .map_err(|e| format!("cannot create user: {e}"))?;
    println!(
        "created user {} ({}) with roles {}",
        user.username,
        user.id,
        user.roles.names().join(",")
    );
    Ok(())
}
