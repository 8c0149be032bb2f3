//! The keys directory: signing keys, their metadata, the refresh secret.

mod key;
mod meta;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, TryLockError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use domain::Timestamp;
use rand::rand_core::UnwrapErr;
use rand::Rng as _;

use crate::error::KeyError;
use crate::files::{self, DirLock};
pub(crate) use key::LoadedKey;
use meta::{KeyEntry, Metadata};

/// The metadata file naming the current key.
pub const KEYS_FILE: &str = "keys.json";
/// 32 random bytes from which successor refresh tokens are derived.
pub const SECRET_FILE: &str = "refresh.secret";
/// A running signer re-reads the directory at least this often, so that a
/// rotation made elsewhere is picked up without a restart.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(60);
/// A token with an unknown kid triggers a re-read at most this often.
const UNKNOWN_KID_RELOAD_INTERVAL: Duration = Duration::from_secs(5);
/// Retired keys whose tokens expired this long ago leave `keys.json` (and
/// their files are deleted) at the next rotation.
const PRUNE_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The signing keys of a keys directory, shared by every clone.
///
/// Cheap to clone; all clones see the same keys. Opening never overwrites
/// anything: a missing key or secret is created once, under a lock, so
/// processes that open an empty directory at the same time agree on them.
#[derive(Clone)]
pub struct KeyStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    refresh_secret: [u8; 32],
    snapshot: RwLock<Arc<Snapshot>>,
    reload_interval: Duration,
    /// When the snapshot was last read from disk.
    last_load: Mutex<Instant>,
    /// When an unknown kid last caused a re-read.
    last_kid_miss: Mutex<Option<Instant>>,
    /// The largest leeway of the signers built on this store, in ms: what
    /// [`KeyStore::jwks`] keeps retired keys published for.
    leeway_ms: AtomicU64,
}

/// Where a key stands, as `tokenwarden keys list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// New tokens are signed with it.
    Current,
    /// Retired, still in the JWKS and verifying: tokens it signed may be valid.
    Published,
    /// Retired and no longer verifying; removed at a later rotation.
    Expired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Published => "published",
            Self::Expired => "expired",
        }
    }
}

/// One key of the directory, as `tokenwarden keys list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub kid: String,
    pub state: KeyState,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
    pub tokens_expire_by: Option<Timestamp>,
}

/// The keys as read at one moment.
#[derive(Debug)]
pub(crate) struct Snapshot {
    current: String,
    keys: Vec<Arc<LoadedKey>>,
}

impl Snapshot {
    pub(crate) fn current(&self) -> Option<&Arc<LoadedKey>> {
        self.keys.iter().find(|k| k.kid == self.current)
    }

    /// The current key and every retired key some token it signed may still
    /// be valid for at `now` (with `leeway`), current first, newest next.
    pub(crate) fn published(&self, now: Timestamp, leeway: Duration) -> Vec<&Arc<LoadedKey>> {
        let mut keys: Vec<_> = self
            .keys
            .iter()
            .filter(|k| {
                k.kid == self.current
                    || k.tokens_expire_by
                        .is_none_or(|until| now <= until.plus(leeway))
            })
            .collect();
        keys.sort_by_key(|k| (k.kid != self.current, std::cmp::Reverse(k.created_at)));
        keys
    }

    pub(crate) fn find_published(
        &self,
        kid: &str,
        now: Timestamp,
        leeway: Duration,
    ) -> Option<Arc<LoadedKey>> {
        self.published(now, leeway)
            .into_iter()
            .find(|k| k.kid == kid)
            .cloned()
    }
}

impl KeyStore {
    /// Opens the keys directory, creating it (mode 0700), a first signing
    /// key and the refresh secret if they are missing.
    ///
    /// # Errors
    /// [`KeyError`] when the directory cannot be created or read, a file in
    /// it is malformed, or another writer holds the lock for too long.
    pub fn open(dir: &Path) -> Result<Self, KeyError> {
        Self::open_with(dir, RELOAD_INTERVAL)
    }

    pub(crate) fn open_with(dir: &Path, reload_interval: Duration) -> Result<Self, KeyError> {
        files::ensure_private_dir(dir)?;
        if !files::exists(&dir.join(KEYS_FILE)) || !files::exists(&dir.join(SECRET_FILE)) {
            initialise(dir, system_now())?;
        }
        let refresh_secret = read_refresh_secret(dir)?;
        let snapshot = load_snapshot(dir, true)?;
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                refresh_secret,
                snapshot: RwLock::new(Arc::new(snapshot)),
                reload_interval,
                last_load: Mutex::new(Instant::now()),
                last_kid_miss: Mutex::new(None),
                leeway_ms: AtomicU64::new(0),
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The kid new tokens are signed with.
    pub fn current_kid(&self) -> String {
        self.snapshot().current.clone()
    }

    /// The secret successor refresh tokens are derived with; the same for
    /// every process sharing this directory.
    pub fn refresh_secret(&self) -> [u8; 32] {
        self.inner.refresh_secret
    }

    /// Makes a new key current and returns its kid. The previous key stays
    /// published and verifying until every token it may have signed has
    /// expired: `now + access_ttl` plus one [`RELOAD_INTERVAL`] (other
    /// instances keep signing with it until they re-read the directory),
    /// plus the verifier's leeway. Pass the servers' access-token lifetime.
    ///
    /// # Errors
    /// [`KeyError`] when the directory cannot be written or is malformed;
    /// nothing is then changed.
    pub fn rotate(&self, now: Timestamp, access_ttl: Duration) -> Result<String, KeyError> {
        let kid = self.make_current(now, access_ttl, key::generate_into)?;
        tracing::info!(%kid, "rotated the access-token signing key");
        Ok(kid)
    }

    /// Adds an operator's Ed25519 private key (PKCS#8 PEM, v1 or v2) and
    /// makes it current, retiring the previous key as [`KeyStore::rotate`]
    /// does. The key is stored as `<kid>.pem` in PKCS#8 v1.
    ///
    /// # Errors
    /// [`KeyError::InvalidImport`] when `pem` is not an Ed25519 private key and
    /// [`KeyError::AlreadyPresent`] when the directory already holds it;
    /// nothing is then changed. [`KeyError`] when the directory cannot be
    /// written.
    pub fn import(
        &self,
        source: &Path,
        pem: &[u8],
        now: Timestamp,
        access_ttl: Duration,
    ) -> Result<String, KeyError> {
        let invalid = |reason| KeyError::InvalidImport {
            path: source.to_path_buf(),
            reason,
        };
        let text = std::str::from_utf8(pem).map_err(|_| invalid("not UTF-8 text"))?;
        let signing = key::parse_pem(source, text).map_err(|_| invalid("cannot decode it"))?;
        let kid = self.make_current(now, access_ttl, |dir| {
            let kid = key::kid_for(&signing.verifying_key().to_bytes());
            if read_metadata(dir)?.keys.iter().any(|k| k.kid == kid) {
                return Err(KeyError::AlreadyPresent { kid });
            }
            key::write_into(dir, &signing)
        })?;
        tracing::info!(%kid, "imported a signing key; it is now current");
        Ok(kid)
    }

    /// Every key `keys.json` lists, as read from the directory now, with its
    /// state at `now` for a verifier with `leeway`; current first, then
    /// newest first.
    ///
    /// # Errors
    /// [`KeyError`] when the metadata cannot be read.
    pub fn list(&self, now: Timestamp, leeway: Duration) -> Result<Vec<KeyInfo>, KeyError> {
        let meta = read_metadata(self.dir())?;
        let mut keys: Vec<KeyInfo> = meta
            .keys
            .iter()
            .map(|e| KeyInfo {
                kid: e.kid.clone(),
                state: if e.kid == meta.current {
                    KeyState::Current
                } else if e
                    .tokens_expire_by_ms
                    .is_none_or(|until| now <= Timestamp::from_millis(until).plus(leeway))
                {
                    KeyState::Published
                } else {
                    KeyState::Expired
                },
                created_at: Timestamp::from_millis(e.created_at_ms),
                retired_at: e.retired_at_ms.map(Timestamp::from_millis),
                tokens_expire_by: e.tokens_expire_by_ms.map(Timestamp::from_millis),
            })
            .collect();
        keys.sort_by_key(|k| {
            (
                k.state != KeyState::Current,
                std::cmp::Reverse(k.created_at),
            )
        });
        Ok(keys)
    }

    /// Under the lock: `create` writes a key file and returns its kid, which
    /// becomes current; keys still current are retired with `tokens_expire_by
    /// = now + access_ttl + RELOAD_INTERVAL` and long-expired ones pruned.
    fn make_current(
        &self,
        now: Timestamp,
        access_ttl: Duration,
        create: impl FnOnce(&Path) -> Result<String, KeyError>,
    ) -> Result<String, KeyError> {
        let dir = self.dir();
        let new_kid = {
            let _lock = DirLock::acquire(dir)?;
            let mut meta = read_metadata(dir)?;
            let new_kid = create(dir)?;
            let expire_by = now.plus(access_ttl).plus(RELOAD_INTERVAL);
            for entry in meta.keys.iter_mut().filter(|e| e.retired_at_ms.is_none()) {
                entry.retired_at_ms = Some(now.as_millis());
                entry.tokens_expire_by_ms = Some(expire_by.as_millis());
            }
            let prune_before = now.minus(PRUNE_AFTER).as_millis();
            let (pruned, kept): (Vec<KeyEntry>, Vec<KeyEntry>) = meta
                .keys
                .into_iter()
                .partition(|e| e.tokens_expire_by_ms.is_some_and(|t| t < prune_before));
            meta.keys = kept;
            meta.keys.push(KeyEntry::new(new_kid.clone(), now));
            meta.current = new_kid.clone();
            files::write_atomic(dir, KEYS_FILE, &meta.to_json()?)?;
            for old in pruned {
                let _ = fs::remove_file(dir.join(key::pem_file_name(&old.kid)));
            }
            new_kid
        };
        self.reload()?;
        Ok(new_kid)
    }

    /// Re-reads the directory now.
    ///
    /// # Errors
    /// [`KeyError`] when it cannot be read; the keys loaded before stay in use.
    pub fn reload(&self) -> Result<(), KeyError> {
        self.load_and_swap()?;
        *lock(&self.inner.last_load) = Instant::now();
        Ok(())
    }

    /// The RFC 7517 key set to serve at `/.well-known/jwks.json`: every key
    /// published now (wall clock), with the leeway of the [`JwtSigner`]s
    /// built on this store (zero if none).
    ///
    /// [`JwtSigner`]: crate::JwtSigner
    pub fn jwks(&self) -> serde_json::Value {
        self.reload_if_stale();
        let leeway = Duration::from_millis(self.inner.leeway_ms.load(Ordering::Relaxed));
        self.jwks_at(system_now(), leeway)
    }

    /// The RFC 7517 key set of every key published at `now` with `leeway`.
    pub fn jwks_at(&self, now: Timestamp, leeway: Duration) -> serde_json::Value {
        let snapshot = self.snapshot();
        let keys: Vec<_> = snapshot
            .published(now, leeway)
            .into_iter()
            .map(|k| k.jwk())
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// The kids published at `now`, current first.
    pub fn published_kids(&self, now: Timestamp, leeway: Duration) -> Vec<String> {
        let snapshot = self.snapshot();
        snapshot
            .published(now, leeway)
            .into_iter()
            .map(|k| k.kid.clone())
            .collect()
    }

    /// Keeps retired keys in [`KeyStore::jwks`] for at least `leeway` past
    /// their tokens' expiry, as the verifier does.
    pub(crate) fn note_leeway(&self, leeway: Duration) {
        let ms = u64::try_from(leeway.as_millis()).unwrap_or(u64::MAX);
        self.inner.leeway_ms.fetch_max(ms, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(
            &self
                .inner
                .snapshot
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Re-reads the directory if the last read is older than the reload
    /// interval. One caller reloads; the others go on with the keys they have.
    pub(crate) fn reload_if_stale(&self) {
        let mut last = match self.inner.last_load.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        if last.elapsed() < self.inner.reload_interval {
            return;
        }
        // Set before reading so that a broken directory is retried once per
        // interval, not on every request.
        *last = Instant::now();
        if let Err(e) = self.load_and_swap() {
            tracing::warn!(error = %e, "cannot re-read the keys directory; keeping the keys loaded before");
        }
    }

    /// A token named a kid we do not know: perhaps another instance rotated.
    /// Re-reads the directory, at most once per few seconds whatever the
    /// tokens say.
    pub(crate) fn reload_after_unknown_kid(&self) {
        let mut last = lock(&self.inner.last_kid_miss);
        if last.is_some_and(|t| t.elapsed() < UNKNOWN_KID_RELOAD_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(e) = self.load_and_swap() {
            tracing::warn!(error = %e, "cannot re-read the keys directory; keeping the keys loaded before");
        }
    }

    fn load_and_swap(&self) -> Result<(), KeyError> {
        let fresh = Arc::new(load_snapshot(&self.inner.dir, false)?);
        *self
            .inner
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }
}

impl From<Arc<KeyStore>> for KeyStore {
    fn from(store: Arc<KeyStore>) -> Self {
        (*store).clone()
    }
}

impl From<&KeyStore> for KeyStore {
    fn from(store: &KeyStore) -> Self {
        store.clone()
    }
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.snapshot();
        f.debug_struct("KeyStore")
            .field("dir", &self.inner.dir)
            .field("current", &snapshot.current)
            .field(
                "kids",
                &snapshot
                    .keys
                    .iter()
                    .map(|k| k.kid.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Creates whatever is missing, under the lock, re-checking once holding it:
/// whoever comes second finds the first one's files and keeps them.
fn initialise(dir: &Path, now: Timestamp) -> Result<(), KeyError> {
    let _lock = DirLock::acquire(dir)?;
    if !files::exists(&dir.join(SECRET_FILE)) {
        let mut secret = [0u8; 32];
        UnwrapErr(rand::rngs::SysRng).fill_bytes(&mut secret);
        files::write_atomic(dir, SECRET_FILE, &secret)?;
        secret.fill(0);
    }
    if !files::exists(&dir.join(KEYS_FILE)) {
        let kid = match adoptable_key(dir)? {
            Some(kid) => {
                tracing::info!(%kid, "adopting the existing signing key");
                kid
            }
            None => {
                let kid = key::generate_into(dir)?;
                tracing::info!(%kid, "created a signing key");
                kid
            }
        };
        let meta = Metadata::new(KeyEntry::new(kid, now));
        files::write_atomic(dir, KEYS_FILE, &meta.to_json()?)?;
    }
    Ok(())
}

/// Without metadata, a `<kid>.pem` an operator placed in the directory
/// becomes the current key (the newest one if there are several).
fn adoptable_key(dir: &Path) -> Result<Option<String>, KeyError> {
    let entries = fs::read_dir(dir).map_err(|e| KeyError::io(dir, e))?;
    let mut best: Option<(SystemTime, String)> = None;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(kid) = name.to_str().and_then(|n| n.strip_suffix(".pem")) else {
            continue;
        };
        if !meta::is_valid_kid(kid) {
            continue;
        }
        let modified = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(UNIX_EPOCH);
        if best
            .as_ref()
            .is_none_or(|(t, k)| (modified, kid) > (*t, k.as_str()))
        {
            best = Some((modified, kid.to_owned()));
        }
    }
    Ok(best.map(|(_, kid)| kid))
}

fn read_refresh_secret(dir: &Path) -> Result<[u8; 32], KeyError> {
    let path = dir.join(SECRET_FILE);
    let bytes = files::read_secret_file(&path, true)?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| KeyError::malformed(&path, "expected exactly 32 bytes"))
}

fn read_metadata(dir: &Path) -> Result<Metadata, KeyError> {
    let path = dir.join(KEYS_FILE);
    let bytes = fs::read(&path).map_err(|e| KeyError::io(&path, e))?;
    Metadata::parse(&path, &bytes)
}

/// Reads the metadata and every key it lists. A retired key that cannot be
/// read is skipped with a warning; the current one must load.
fn load_snapshot(dir: &Path, warn_if_exposed: bool) -> Result<Snapshot, KeyError> {
    let meta = read_metadata(dir)?;
    let mut keys = Vec::with_capacity(meta.keys.len());
    for entry in &meta.keys {
        let path = dir.join(key::pem_file_name(&entry.kid));
        let loaded = files::read_secret_file(&path, warn_if_exposed)
            .and_then(|pem| LoadedKey::from_pem(&path, &pem, entry));
        match loaded {
            Ok(k) => keys.push(Arc::new(k)),
            Err(e) if entry.kid == meta.current => return Err(e),
            Err(e) => {
                tracing::warn!(kid = %entry.kid, error = %e, "skipping an unreadable retired key")
            }
        }
    }
    Ok(Snapshot {
        current: meta.current,
        keys,
    })
}

/// The wall clock, for the creation time of a first key.
pub(crate) fn system_now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Timestamp::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod import_tests;
#[cfg(test)]
mod tests;
