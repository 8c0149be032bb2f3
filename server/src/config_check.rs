//! `tokenwarden config check` beyond the values: can the database and Redis
//! be reached, and does the keys directory hold usable keys. Nothing is
//! written but what `serve` would write first (a missing SQLite file is
//! created, as `serve` does; the keys directory is never initialised).

use std::path::Path;
use std::time::Duration;

use jwt::{KeyStore, KEYS_FILE, SECRET_FILE};
use persistence::Database;
use secrecy::ExposeSecret as _;

use crate::cli::Check;
use crate::config::Config;

/// The longest the Redis check waits per step, at least: the configured
/// `TOKENWARDEN_REDIS_TIMEOUT` is a per-call deadline, tight for a first
/// TLS connection.
const MIN_REDIS_WAIT: Duration = Duration::from_secs(1);

/// What one check found: a short description, or why it failed.
#[derive(Debug)]
pub struct Outcome {
    pub check: Check,
    /// The setting the check is about.
    pub setting: &'static str,
    pub result: Result<String, String>,
}

impl Outcome {
    /// One line: `# database (DATABASE_URL): ok, …` or
    /// `# database (DATABASE_URL): FAILED: …`.
    pub fn line(&self) -> String {
        let name = self.check.name();
        match &self.result {
            Ok(what) => format!("# {name} ({}): ok, {what}", self.setting),
            Err(why) => format!("# {name} ({}): FAILED: {why}", self.setting),
        }
    }
}

impl Check {
    pub fn name(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::Redis => "redis",
            Self::Keys => "keys",
        }
    }
}

/// Runs every check but those in `skip`, in order: database, Redis, keys.
pub fn run(config: &Config, skip: &[Check]) -> Vec<Outcome> {
    [Check::Database, Check::Redis, Check::Keys]
        .into_iter()
        .filter(|c| !skip.contains(c))
        .map(|check| match check {
            Check::Database => Outcome {
                check,
                setting: "DATABASE_URL",
                result: database(config),
            },
            Check::Redis => Outcome {
                check,
                setting: "REDIS_URL",
                result: redis(config),
            },
            Check::Keys => Outcome {
                check,
                setting: "TOKENWARDEN_KEYS_DIR",
                result: keys(&config.keys_dir),
            },
        })
        .map(|mut outcome| {
            // libpq's messages span lines; a check is reported on one.
            outcome.result = outcome.result.map_err(|e| one_line(&e));
            outcome
        })
        .collect()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn database(config: &Config) -> Result<String, String> {
    let db = Database::connect_with(
        config.database_url.expose_secret(),
        1,
        config.dependency_timeout,
    )
    .map_err(|e| e.to_string())?;
    db.ping().map_err(|e| e.to_string())?;
    Ok("connected (SELECT 1)".to_owned())
}

fn redis(config: &Config) -> Result<String, String> {
    let Some(url) = config.redis_url.as_ref().map(|u| u.expose_secret()) else {
        return Ok("not configured: the revocation list is the database's".to_owned());
    };
    redis_revocation::pool::ping_once(url, config.redis_timeout.max(MIN_REDIS_WAIT))?;
    Ok("connected (PING)".to_owned())
}

/// The directory exists; if it holds keys, they load; if it is empty,
/// `serve` can write its first key there.
fn keys(dir: &Path) -> Result<String, String> {
    let shown = dir.display();
    let meta = std::fs::metadata(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "{shown} does not exist (create it, mode 0700, for the user that runs serve; \
             serve then writes the first key)"
        ),
        _ => format!("{shown}: {e}"),
    })?;
    if !meta.is_dir() {
        return Err(format!("{shown} is not a directory"));
    }
    let initialised = dir.join(KEYS_FILE).exists() && dir.join(SECRET_FILE).exists();
    if !initialised {
        let probe = dir.join(format!(".config-check-{}", std::process::id()));
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| format!("{shown} holds no keys yet and cannot be written: {e}"))?;
        return Ok(format!("{shown} holds no keys yet; serve writes the first"));
    }
    let store = KeyStore::open(dir).map_err(|e| format!("{shown}: {e}"))?;
    Ok(format!("{shown}, current key {}", store.current_kid()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_missing_keys_directory_fails_and_an_empty_one_passes_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("keys");
        let e = keys(&missing).unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        assert!(!missing.exists(), "the check created the directory");

        std::fs::create_dir(&missing).unwrap();
        assert!(keys(&missing).unwrap().contains("no keys yet"));
        assert_eq!(std::fs::read_dir(&missing).unwrap().count(), 0);

        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(keys(&file).unwrap_err().contains("not a directory"));
    }

    #[test]
    fn an_initialised_keys_directory_names_its_current_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path()).unwrap();
        let found = keys(dir.path()).unwrap();
        assert!(found.contains(&store.current_kid()), "{found}");
    }

    #[test]
    fn unreachable_services_fail_their_checks_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::with_defaults("postgres://nobody@127.0.0.1:1/none", dir.path());
        config.redis_url = Some(secrecy::SecretString::from("redis://127.0.0.1:1"));
        let outcomes = run(&config, &[]);
        let names: Vec<_> = outcomes.iter().map(|o| o.check).collect();
        assert_eq!(names, [Check::Database, Check::Redis, Check::Keys]);
        assert!(outcomes[0].result.is_err(), "{}", outcomes[0].line());
        assert!(outcomes[0]
            .line()
            .starts_with("# database (DATABASE_URL): FAILED"));
        assert!(outcomes[1].result.is_err(), "{}", outcomes[1].line());
        assert!(outcomes[2].result.is_ok(), "{}", outcomes[2].line());
        assert_eq!(run(&config, &[Check::Database, Check::Redis]).len(), 1);
    }
}
