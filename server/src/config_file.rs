//! The optional settings file (`--config <path>` or `TOKENWARDEN_CONFIG`),
//! and the effective configuration as `tokenwarden config check` prints it.
//!
//! Precedence is flag > environment > file > built-in default. The file's
//! values become the defaults of the command line before it is parsed, so
//! clap applies that order by itself and every setting of the contract is
//! covered without a list to keep up to date.
//!
//! Keys are the settings' names as `config check` prints them: the flag
//! name with `_` for `-` (`access_token_ttl = "15m"`,
//! `database_url = "postgres://…"`, `rust_log = "info"`). Values are
//! strings, integers or booleans; lists (`trusted_proxies`,
//! `allowed_origins`) may also be arrays. Unknown keys and tables are
//! errors, so a typo never goes unnoticed.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches};

use crate::config::ConfigError;

/// The setting naming the file.
pub const CONFIG_SETTING: &str = "TOKENWARDEN_CONFIG";

/// The id of the `--config` argument every command line using this module
/// must define (`#[arg(long, env = "TOKENWARDEN_CONFIG", global = true)]`).
pub const CONFIG_ARG: &str = "config";

/// Settings whose values `config check` never prints.
const SECRETS: [&str; 2] = ["introspection_token", "webhook_secret"];
/// URL settings printed with their password replaced.
const URLS: [&str; 3] = ["database_url", "redis_url", "webhook_url"];

const REDACTED: &str = "<redacted>";

/// The file that was read and the keys it set.
#[derive(Debug, Clone)]
pub struct FileSettings {
    pub path: PathBuf,
    pub keys: BTreeSet<String>,
}

/// A parsed command line.
#[derive(Debug)]
pub struct Parsed<C> {
    pub cli: C,
    pub matches: ArgMatches,
    pub file: Option<FileSettings>,
}

/// Parses the process's arguments, with the settings file (if any) as
/// defaults. `--help`, `--version` and usage errors exit as clap does.
///
/// # Errors
/// [`ConfigError`] naming `TOKENWARDEN_CONFIG` when the file cannot be read
/// or holds anything but known settings.
pub fn parse<C: CommandFactory + FromArgMatches>() -> Result<Parsed<C>, ConfigError> {
    parse_from(std::env::args_os().collect())
}

/// [`parse`] over the given arguments (the first is the program name).
///
/// # Errors
/// See [`parse`].
pub fn parse_from<C: CommandFactory + FromArgMatches>(
    args: Vec<OsString>,
) -> Result<Parsed<C>, ConfigError> {
    let mut cmd = C::command();
    let file = match config_path(&cmd, &args) {
        Some(path) => {
            let (with_file, keys) = apply_file(cmd, &path)?;
            cmd = with_file;
            Some(FileSettings { path, keys })
        }
        None => None,
    };
    let matches = cmd.try_get_matches_from(args).unwrap_or_else(|e| e.exit());
    let cli = C::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    Ok(Parsed { cli, matches, file })
}

/// The `--config` flag or `TOKENWARDEN_CONFIG`, read before the real parse
/// (which needs the file's values as defaults).
fn config_path(cmd: &Command, args: &[OsString]) -> Option<PathBuf> {
    cmd.clone()
        .ignore_errors(true)
        .try_get_matches_from(args)
        .ok()
        .and_then(|m| find_config(&m))
        .or_else(|| std::env::var_os(CONFIG_SETTING).map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty())
}

fn find_config(m: &ArgMatches) -> Option<PathBuf> {
    if let Ok(Some(p)) = m.try_get_one::<PathBuf>(CONFIG_ARG) {
        return Some(p.clone());
    }
    m.subcommand().and_then(|(_, sub)| find_config(sub))
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::new(CONFIG_SETTING, format!("{}: {message}", path.display()))
}

/// Sets every value of the file as the default of its argument.
fn apply_file(mut cmd: Command, path: &Path) -> Result<(Command, BTreeSet<String>), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let line = e.span().map_or(0, |s| {
            text[..s.start.min(text.len())].lines().count().max(1)
        });
        file_error(path, format!("line {line}: {}", e.message().trim()))
    })?;
    let known: BTreeSet<String> = settings(&cmd).map(|a| a.get_id().to_string()).collect();
    let mut keys = BTreeSet::new();
    for (key, value) in table {
        if !known.contains(&key) {
            return Err(file_error(path, format!("unknown setting '{key}'")));
        }
        let value = scalar_text(&value)
            .or_else(|| match &value {
                toml::Value::Array(items) => items
                    .iter()
                    .map(scalar_text)
                    .collect::<Option<Vec<_>>>()
                    .map(|v| v.join(",")),
                _ => None,
            })
            .ok_or_else(|| {
                file_error(
                    path,
                    format!("'{key}' must be a string, number, boolean or list of them"),
                )
            })?;
        cmd = cmd.mut_arg(key.as_str(), |a| a.default_value(value));
        keys.insert(key);
    }
    Ok((cmd, keys))
}

fn scalar_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The settings: every argument but `--help`, `--version` and `--config`.
fn settings(cmd: &Command) -> impl Iterator<Item = &clap::Arg> {
    cmd.get_arguments().filter(|a| {
        let id = a.get_id().as_str();
        !matches!(id, "help" | "version" | CONFIG_ARG) && a.get_long().is_some()
    })
}

/// The effective configuration as TOML (usable as a settings file), each
/// line saying where its value came from; secrets redacted.
pub fn render_effective<C: CommandFactory>(
    matches: &ArgMatches,
    file: Option<&FileSettings>,
) -> String {
    let cmd = C::command();
    let mut out = String::new();
    match file {
        Some(f) => {
            let _ = writeln!(out, "# settings file: {}", f.path.display());
        }
        None => out.push_str("# no settings file (--config or TOKENWARDEN_CONFIG)\n"),
    }
    out.push_str("# precedence: flag > environment > file > default\n");
    for arg in settings(&cmd) {
        let id = arg.get_id().as_str();
        let values: Vec<String> = matches
            .get_raw(id)
            .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let source = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => "flag",
            Some(ValueSource::EnvVariable) => "environment",
            Some(ValueSource::DefaultValue) if file.is_some_and(|f| f.keys.contains(id)) => "file",
            Some(ValueSource::DefaultValue) => "default",
            _ => "unset",
        };
        let env = arg
            .get_env()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        if values.is_empty() {
            let _ = writeln!(out, "# {id} is unset  ({env})");
            continue;
        }
        let value = redact(id, &values.join(","));
        let _ = writeln!(out, "{id} = {}  # {source} ({env})", toml_string(&value));
    }
    out
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// What `config check` may print of the value of setting `id`.
pub fn redact(id: &str, value: &str) -> String {
    if SECRETS.contains(&id) {
        REDACTED.to_owned()
    } else if URLS.contains(&id) {
        redact_url(value)
    } else {
        value.to_owned()
    }
}

/// Replaces the password of `scheme://user:password@host/…` and any
/// `password=` query parameter.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let (scheme, rest) = url.split_at(scheme_end);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{REDACTED}@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => {
                        format!("{k}={REDACTED}")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
}

#[cfg(test)]
mod tests;
