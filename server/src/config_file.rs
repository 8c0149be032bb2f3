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
    /// The command line's definition, with the file's values as defaults.
    pub command: Command,
    pub matches: ArgMatches,
    pub file: Option<FileSettings>,
}

impl<C> Parsed<C> {
    /// Where the value of `setting` (its environment variable) came from,
    /// as an operator would look for it: `--flag`, the variable, or
    /// `key in <file>`; `None` for a default or an unset setting.
    pub fn source_of(&self, setting: &str) -> Option<String> {
        let (cmd, matches) = leaf(&self.command, &self.matches);
        let arg = settings(cmd).find(|a| env_name(a).as_deref() == Some(setting))?;
        let id = arg.get_id().as_str();
        match matches.value_source(id)? {
            ValueSource::CommandLine => Some(flag(arg)),
            ValueSource::EnvVariable => Some(setting.to_owned()),
            ValueSource::DefaultValue => self.file.as_ref().and_then(|f| file_key(f, id)),
            _ => None,
        }
    }

    /// `error` naming where its value came from.
    pub fn locate(&self, error: ConfigError) -> ConfigError {
        let source = self.source_of(&error.setting);
        error.from_origin(source)
    }

    /// The effective settings of the subcommand that was run, as
    /// [`render_effective`] prints them.
    pub fn render_effective(&self) -> String {
        let (cmd, matches) = leaf(&self.command, &self.matches);
        render_effective(cmd, matches, self.file.as_ref())
    }
}

/// Parses the process's arguments, with the settings file (if any) as
/// defaults. `--help`, `--version` and usage errors exit as clap does.
///
/// # Errors
/// [`ConfigError`] naming `TOKENWARDEN_CONFIG` when the file cannot be read
/// or holds anything but known settings, or naming the flag, variable or
/// file key whose value a parser refused.
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
    let matches = match cmd.clone().try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) => match explain(&e, &cmd, &args, file.as_ref()) {
            Some(error) => return Err(error),
            None => e.exit(),
        },
    };
    let cli = C::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    Ok(Parsed {
        cli,
        command: cmd,
        matches,
        file,
    })
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

/// Sets every value of the file as the default of its argument, in every
/// subcommand that takes it: one file serves every command.
fn apply_file(mut cmd: Command, path: &Path) -> Result<(Command, BTreeSet<String>), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let line = e.span().map_or(0, |s| {
            text[..s.start.min(text.len())].lines().count().max(1)
        });
        file_error(path, format!("line {line}: {}", e.message().trim()))
    })?;
    let mut known = BTreeSet::new();
    every_setting(&cmd, &mut |a| {
        known.insert(a.get_id().to_string());
    });
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
        cmd = set_default(cmd, &key, &value);
        keys.insert(key);
    }
    Ok((cmd, keys))
}

fn set_default(cmd: Command, id: &str, value: &str) -> Command {
    cmd.mut_args(|a| {
        if a.get_id() == id {
            a.default_value(value.to_owned())
        } else {
            a
        }
    })
    .mut_subcommands(|sub| set_default(sub, id, value))
}

/// Calls `f` on every setting of `cmd` and its subcommands.
fn every_setting(cmd: &Command, f: &mut impl FnMut(&clap::Arg)) {
    settings(cmd).for_each(&mut *f);
    for sub in cmd.get_subcommands() {
        every_setting(sub, f);
    }
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

/// The settings of one command: its arguments with an environment variable
/// (`--config` aside); a subcommand's own options (`--role`) have none.
fn settings(cmd: &Command) -> impl Iterator<Item = &clap::Arg> {
    cmd.get_arguments()
        .filter(|a| a.get_id() != CONFIG_ARG && a.get_env().is_some() && a.get_long().is_some())
}

fn env_name(arg: &clap::Arg) -> Option<String> {
    arg.get_env().map(|e| e.to_string_lossy().into_owned())
}

fn flag(arg: &clap::Arg) -> String {
    format!("--{}", arg.get_long().unwrap_or_default())
}

fn file_key(file: &FileSettings, id: &str) -> Option<String> {
    file.keys
        .contains(id)
        .then(|| format!("{id} in {}", file.path.display()))
}

/// The subcommand that was run, and its matches.
fn leaf<'a>(cmd: &'a Command, matches: &'a ArgMatches) -> (&'a Command, &'a ArgMatches) {
    match matches.subcommand() {
        Some((name, sub)) => match cmd.find_subcommand(name) {
            Some(sub_cmd) => leaf(sub_cmd, sub),
            None => (cmd, matches),
        },
        None => (cmd, matches),
    }
}

/// A parser's refusal of a setting's value as one line naming where the
/// value came from: the flag if it is on the command line, else the
/// variable if it is set, else the file's key (clap itself always names the
/// flag). `None` for other errors (usage, `--help`).
fn explain(
    error: &clap::Error,
    cmd: &Command,
    args: &[OsString],
    file: Option<&FileSettings>,
) -> Option<ConfigError> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        error.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        return None;
    }
    let context = |kind| error.get(kind);
    let Some(ContextValue::String(label)) = context(ContextKind::InvalidArg) else {
        return None;
    };
    let long = label
        .trim_start_matches('-')
        .split([' ', '='])
        .next()
        .unwrap_or_default();
    let mut found = None;
    every_setting(cmd, &mut |a| {
        if found.is_none() && a.get_long() == Some(long) {
            found = Some(a.clone());
        }
    });
    let arg = found?;
    let message = match error.kind() {
        ErrorKind::ValueValidation => std::error::Error::source(error)
            .map_or_else(|| "not a valid value".to_owned(), ToString::to_string),
        _ => {
            let value = match context(ContextKind::InvalidValue) {
                Some(ContextValue::String(v)) => v.clone(),
                _ => String::new(),
            };
            let valid = match context(ContextKind::ValidValue) {
                Some(ContextValue::Strings(v)) => v.join(", "),
                _ => String::new(),
            };
            format!("'{value}' is not one of {valid}")
        }
    };
    let env = env_name(&arg).unwrap_or_else(|| flag(&arg));
    let id = arg.get_id().as_str();
    let on_command_line = args.iter().skip(1).any(|a| {
        a.to_str().is_some_and(|a| {
            a.strip_prefix("--")
                .and_then(|a| a.strip_prefix(long))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
        })
    });
    let source = if on_command_line {
        Some(flag(&arg))
    } else if std::env::var_os(&env).is_some() {
        Some(env.clone())
    } else {
        file.and_then(|f| file_key(f, id))
    };
    Some(ConfigError::new(env, message).from_origin(source))
}

/// The effective configuration of one command as TOML (usable as a
/// settings file), each line saying where its value came from; secrets
/// redacted.
pub fn render_effective(
    cmd: &Command,
    matches: &ArgMatches,
    file: Option<&FileSettings>,
) -> String {
    let mut out = String::new();
    match file {
        Some(f) => {
            let _ = writeln!(out, "# settings file: {}", f.path.display());
        }
        None => out.push_str("# no settings file (--config or TOKENWARDEN_CONFIG)\n"),
    }
    out.push_str("# precedence: flag > environment > file > default\n");
    for arg in settings(cmd) {
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
        let env = env_name(arg).unwrap_or_default();
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
/// `password=` query parameter (found by the `url` crate); anything else
/// is printed as given. A value that may hold a credential but is not a
/// URL is redacted whole.
pub fn redact_url(text: &str) -> String {
    // Without `@` or a `password` parameter there is nothing to hide: the
    // value is printed exactly as given (SQLite paths included).
    if !text.contains('@') && !text.to_ascii_lowercase().contains("password") {
        return text.to_owned();
    }
    let Ok(mut url) = url::Url::parse(text) else {
        return REDACTED.to_owned();
    };
    let secret_password = url.password().is_some();
    let secret_query = url
        .query_pairs()
        .any(|(k, _)| k.eq_ignore_ascii_case("password"));
    if !secret_password && !secret_query {
        return text.to_owned();
    }
    // A marker the URL serialisation leaves alone (`<`, `>` it would encode).
    const MARKER: &str = "tokenwardenredactedvalue";
    if secret_password && url.set_password(Some(MARKER)).is_err() {
        return REDACTED.to_owned();
    }
    if secret_query {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("password") {
                    MARKER.to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.as_str().replace(MARKER, REDACTED)
}

#[cfg(test)]
mod tests;
