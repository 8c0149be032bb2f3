//! `tokenwarden user …`: account management on the command line, as the
//! operator (no admin account needed, no self-lockout rule: the operator
//! is how an installation recovers). Each command prints what it did, or
//! fails with one line (an unknown user included); the password is only
//! ever read from standard input.

use std::io::Read as _;

use application::{AdminError, Manager, RegisterInput, TokenWarden, UserPatch};
use domain::{PageLimit, Password, Role, Roles, User, Username, UsernamePrefix};

use crate::config::Config;
use crate::startup::{build_operator_warden, open_database};

type CmdResult = Result<(), Box<dyn std::error::Error>>;

fn warden(config: &Config) -> Result<TokenWarden, Box<dyn std::error::Error>> {
    let db = open_database(config)?;
    Ok(build_operator_warden(config, &db)?)
}

/// The password on standard input: at most 4 KiB, one trailing newline
/// (`\n` or `\r\n`) removed.
///
/// # Errors
/// When stdin cannot be read or the password is not 8–256 characters.
pub fn password_from_stdin() -> Result<Password, Box<dyn std::error::Error>> {
    let mut input = String::new();
    std::io::stdin().take(4096).read_to_string(&mut input)?;
    let password = input
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&input);
    Ok(Password::parse(password.to_owned()).map_err(|e| format!("invalid password: {e}"))?)
}

/// Role names from `--role` (repeatable).
///
/// # Errors
/// The first invalid name.
pub fn parse_roles(roles: &[String]) -> Result<Roles, Box<dyn std::error::Error>> {
    Ok(Roles::new(
        roles
            .iter()
            .map(|r| Role::parse(r).map_err(|e| format!("invalid role '{r}': {e}")))
            .collect::<Result<Vec<_>, _>>()?,
    ))
}

fn failed(what: &str) -> impl Fn(AdminError) -> Box<dyn std::error::Error> + '_ {
    move |e| format!("cannot {what}: {e}").into()
}

/// The user named `name` (any letter case).
fn existing(warden: &TokenWarden, name: &str) -> Result<User, Box<dyn std::error::Error>> {
    let username = Username::parse(name).map_err(|_| format!("no user named '{name}'"))?;
    warden
        .find_user(Manager::Operator, &username)
        .map_err(failed("look the user up"))?
        .ok_or_else(|| format!("no user named '{name}'").into())
}

fn describe(user: &User) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}",
        user.id,
        user.username,
        user.roles.names().join(","),
        if user.disabled { "disabled" } else { "enabled" },
        web::rfc3339(user.created_at),
        user.last_login_at
            .map_or_else(|| "-".to_owned(), web::rfc3339),
    )
}

/// `user create <name> [--role …] --password-stdin`.
///
/// # Errors
/// Without `--password-stdin`, an invalid name, role or password, a name
/// taken.
pub fn create(
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
        parse_roles(roles)?
    };
    let password = password_from_stdin()?;
    let user = warden(config)?
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

/// `user list [--query <prefix>]`: every user (or those whose name starts
/// with the prefix, in any letter case), one line each.
///
/// # Errors
/// A prefix over 64 characters, or the database.
pub fn list(config: &Config, query: Option<&str>) -> CmdResult {
    let prefix =
        UsernamePrefix::parse(query.unwrap_or("")).map_err(|e| format!("invalid --query: {e}"))?;
    let warden = warden(config)?;
    println!("id\tusername\troles\tstate\tcreated_at\tlast_login_at");
    let mut before: Option<String> = None;
    let mut count = 0usize;
    loop {
        let page = warden
            .list_users(
                Manager::Operator,
                prefix.clone(),
                before.as_deref(),
                PageLimit::new(PageLimit::MAX).map_err(|e| e.to_string())?,
            )
            .map_err(failed("list users"))?;
        for user in &page.items {
            println!("{}", describe(user));
        }
        count += page.items.len();
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    eprintln!("{count} user(s)");
    Ok(())
}

/// `user set-password <name> --password-stdin`: every session revoked.
///
/// # Errors
/// Without `--password-stdin`, an unknown user, a bad password.
pub fn set_password(config: &Config, name: &str, password_stdin: bool) -> CmdResult {
    if !password_stdin {
        return Err("user set-password needs --password-stdin: passwords are never read from the command line".into());
    }
    let password = password_from_stdin()?;
    let warden = warden(config)?;
    let user = existing(&warden, name)?;
    warden
        .reset_password(Manager::Operator, user.id, &password)
        .map_err(failed("set the password"))?;
    println!(
        "set a new password for {} ({}); every session revoked",
        user.username, user.id
    );
    Ok(())
}

/// `user roles <name> --role …`: the user's roles become exactly these.
///
/// # Errors
/// No `--role`, an invalid role, an unknown user.
pub fn set_roles(config: &Config, name: &str, roles: &[String]) -> CmdResult {
    if roles.is_empty() {
        return Err("user roles needs at least one --role".into());
    }
    let roles = parse_roles(roles)?;
    let warden = warden(config)?;
    let user = existing(&warden, name)?;
    let updated = warden
        .update_user(
            Manager::Operator,
            user.id,
            UserPatch {
                roles: Some(roles),
                disabled: None,
            },
        )
        .map_err(failed("change the roles"))?;
    println!(
        "roles of {} ({}): {} (were {})",
        updated.username,
        updated.id,
        updated.roles.names().join(","),
        user.roles.names().join(",")
    );
    Ok(())
}

/// `user disable <name>` / `user enable <name>`.
///
/// # Errors
/// An unknown user.
pub fn set_disabled(config: &Config, name: &str, disabled: bool) -> CmdResult {
    let warden = warden(config)?;
    let user = existing(&warden, name)?;
    warden
        .update_user(
            Manager::Operator,
            user.id,
            UserPatch {
                roles: None,
                disabled: Some(disabled),
            },
        )
        .map_err(failed(if disabled { "disable" } else { "enable" }))?;
    if disabled {
        println!(
            "disabled {} ({}); every session revoked",
            user.username, user.id
        );
    } else {
        println!("enabled {} ({})", user.username, user.id);
    }
    Ok(())
}

/// `user delete <name>`: the user, their sessions and tokens; the audit
/// trail stays until its retention.
///
/// # Errors
/// An unknown user.
pub fn delete(config: &Config, name: &str) -> CmdResult {
    let warden = warden(config)?;
    let user = existing(&warden, name)?;
    warden
        .delete_user(Manager::Operator, user.id)
        .map_err(failed("delete the user"))?;
    println!(
        "deleted {} ({}) with their sessions; audit rows and security events stay until the retention",
        user.username, user.id
    );
    Ok(())
}
