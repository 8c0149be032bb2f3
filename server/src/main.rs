//! `tokenwarden`: serve, migrate, manage users, rotate keys, check config.

use std::process::ExitCode;

use application::cleanup::CleanupRun;
use server::cleanup::cleanup_service;
use server::cli::{Cli, Command, ConfigCommand, KeysCommand, UserCommand};
use server::startup::open_database;
use server::{commands, config_check, config_file, telemetry, user_commands, Application, Config};

fn main() -> ExitCode {
    let parsed = match config_file::parse::<Cli>() {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let command = &parsed.cli.command;
    let config = match command.config() {
        Ok(c) => c,
        Err(e) => return fail(&parsed.locate(e)),
    };
    telemetry::init(&config.rust_log, config.log_format);
    let result = match command {
        Command::Serve(_) => serve(config),
        Command::Migrate(_) => migrate(&config),
        Command::Cleanup(_) => cleanup(&config),
        Command::User(UserCommand::Create {
            username,
            roles,
            password_stdin,
            ..
        }) => user_commands::create(&config, username, roles, *password_stdin),
        Command::User(UserCommand::List { query, .. }) => {
            user_commands::list(&config, query.as_deref())
        }
        Command::User(UserCommand::SetPassword {
            username,
            password_stdin,
            ..
        }) => user_commands::set_password(&config, username, *password_stdin),
        Command::User(UserCommand::Roles {
            username, roles, ..
        }) => user_commands::set_roles(&config, username, roles),
        Command::User(UserCommand::Disable { username, .. }) => {
            user_commands::set_disabled(&config, username, true)
        }
        Command::User(UserCommand::Enable { username, .. }) => {
            user_commands::set_disabled(&config, username, false)
        }
        Command::User(UserCommand::Delete { username, .. }) => {
            user_commands::delete(&config, username)
        }
        Command::Keys(KeysCommand::Rotate(_)) => commands::rotate_keys(&config),
        Command::Keys(KeysCommand::Import { file, .. }) => commands::import_key(&config, file),
        Command::Keys(KeysCommand::List(_)) => commands::list_keys(&config),
        Command::Config(ConfigCommand::Check { skip, .. }) => {
            print!("{}", parsed.render_effective());
            println!("# the settings are valid");
            check(&config, skip)
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

/// The checks of `config check`, one line each on stdout; the first that
/// failed is the error.
fn check(config: &Config, skip: &[server::cli::Check]) -> CmdResult {
    let outcomes = config_check::run(config, skip);
    for outcome in &outcomes {
        println!("{}", outcome.line());
    }
    match outcomes.iter().find(|o| o.result.is_err()) {
        None => Ok(()),
        Some(failed) => Err(format!(
            "config check failed: {} ({}): {}",
            failed.check.name(),
            failed.setting,
            failed.result.as_ref().err().map_or("", String::as_str)
        )
        .into()),
    }
}

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
        }
    }
    Ok(())
}
