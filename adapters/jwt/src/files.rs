//! File-system primitives for the keys directory.
//!
//! Writers serialise on a lock file ([`DirLock`]) and replace files by
//! writing a temporary file and renaming it, so readers (which never lock)
//! see either the old or the new content, never a partial one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::error::KeyError;

const LOCK_FILE: &str = ".keys.lock";
/// How long a writer waits for another one.
const LOCK_TIMEOUT: Duration = Duration::from_secs(15);
/// A lock older than this was left by a process that died while holding it:
/// no writer holds it for more than a fraction of a second.
const LOCK_STALE_AFTER: Duration = Duration::from_secs(30);

/// Creates `dir` (and missing parents) with mode 0700 if it does not exist.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), KeyError> {
    if dir.is_dir() {
        warn_if_shared_dir(dir);
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| KeyError::io(dir, e))
}

fn warn_if_shared_dir(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = fs::metadata(dir) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %dir.display(),
                    mode = format!("{mode:o}"),
                    "the keys directory is accessible to other users; chmod 700 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Whether `path` exists; errors other than "not found" count as existing so
/// that the following read reports them.
pub(crate) fn exists(path: &Path) -> bool {
    !matches!(fs::symlink_metadata(path), Err(e) if e.kind() == io::ErrorKind::NotFound)
}

/// Writes `bytes` to `dir/name` with mode 0600, atomically replacing any
/// previous file of that name.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), KeyError> {
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let target = dir.join(name);
    let result = write_new_private(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, &target))
        .map_err(|e| KeyError::io(&target, e));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    // Make the rename itself durable; failure here is not worth an error.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_new_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Reads a file that holds secret material, warning when others may read it.
pub(crate) fn read_secret_file(path: &Path, warn_if_exposed: bool) -> Result<Vec<u8>, KeyError> {
    let bytes = fs::read(path).map_err(|e| KeyError::io(path, e))?;
    #[cfg(unix)]
    if warn_if_exposed {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{mode:o}"),
                    "secret key material is readable by other users; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = warn_if_exposed;
    Ok(bytes)
}

/// An exclusive lock on the keys directory for writers, held while alive.
#[derive(Debug)]
pub(crate) struct DirLock {
    path: PathBuf,
}

impl DirLock {
    pub(crate) fn acquire(dir: &Path) -> Result<Self, KeyError> {
        let path = dir.join(LOCK_FILE);
        let started = Instant::now();
        loop {
            match write_new_private(&path, std::process::id().to_string().as_bytes()) {
                Ok(()) => return Ok(Self { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(KeyError::io(&path, e)),
            }
            if is_stale(&path) {
                tracing::warn!(path = %path.display(), "removing a stale keys-directory lock");
                let _ = fs::remove_file(&path);
                continue;
            }
            if started.elapsed() > LOCK_TIMEOUT {
                return Err(KeyError::LockTimeout { path });
            }
            thread::sleep(Duration::from_millis(
                10 + u64::from(rand::random::<u8>() % 20),
            ));
        }
    }
}

fn is_stale(lock: &Path) -> bool {
    fs::metadata(lock)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .is_some_and(|age| age > LOCK_STALE_AFTER)
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
