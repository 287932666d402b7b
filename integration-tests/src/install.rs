//! Installing a test's third-party tool once per machine (ganache from npm,
//! the chains' Python client libraries from PyPI) under the target
//! directory: test binaries run in parallel processes, so an install is
//! guarded by a lock file created with `O_EXCL` (portable, no extra crate),
//! and the installers install into a temporary directory and rename it into
//! place, so a half-finished install is never mistaken for a good one.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// A lock file older than this belongs to a crashed installer.
const STALE_LOCK: Duration = Duration::from_secs(900);

/// The workspace's target directory (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match std::env::var_os("CARGO_TARGET_DIR") {
        // Cargo resolves a relative CARGO_TARGET_DIR against the directory it
        // was run from, normally the workspace root; tests run in the crate
        // directory, so resolve it against the workspace explicitly.
        Some(dir) if !dir.is_empty() => workspace.join(dir),
        _ => workspace.join("target"),
    }
}

/// What [`take_lock`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Lock {
    /// The lock file is ours: install, then remove it.
    Taken,
    /// Another process finished the install while we waited.
    Done,
}

/// Takes the install lock at `lock` (creating it), waiting while another
/// process holds it, until `done` says that one finished or `timeout`
/// passes. A lock older than [`STALE_LOCK`] was left by a process that
/// died mid-install: it is removed and taken.
pub fn take_lock(lock: &Path, done: impl Fn() -> bool, timeout: Duration) -> Result<Lock, String> {
    let start = Instant::now();
    loop {
        match OpenOptions::new().write(true).create_new(true).open(lock) {
            Ok(_) => return Ok(Lock::Taken),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                // Someone else is installing: wait for their result.
                if done() {
                    return Ok(Lock::Done);
                }
                if is_stale(lock) {
                    let _ = fs::remove_file(lock);
                    continue;
                }
                if start.elapsed() > timeout {
                    return Err(format!("waited {timeout:?} for {}", lock.display()));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => return Err(format!("creating {}: {e}", lock.display())),
        }
    }
}

fn is_stale(lock: &Path) -> bool {
    fs::metadata(lock)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > STALE_LOCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sets the modification time of `path` to `age` ago.
    fn age(path: &Path, age: Duration) {
        let when = SystemTime::now() - age;
        fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    #[test]
    fn a_stale_lock_is_taken_over_and_a_live_one_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("install.lock");
        assert!(!is_stale(&dir.path().join("missing")));

        // A process died mid-install long ago: its lock is taken over.
        fs::write(&lock, b"").unwrap();
        age(&lock, STALE_LOCK + Duration::from_secs(60));
        assert!(is_stale(&lock));
        let taken = take_lock(&lock, || false, Duration::from_secs(5)).unwrap();
        assert_eq!(taken, Lock::Taken);
        assert!(!is_stale(&lock), "the lock is ours now, and fresh");

        // A live holder (a fresh lock) is waited for: until it finishes,
        // or until the wait runs out.
        assert_eq!(
            take_lock(&lock, || true, Duration::from_secs(5)).unwrap(),
            Lock::Done
        );
        let e = take_lock(&lock, || false, Duration::from_millis(300)).unwrap_err();
        assert!(e.to_string().contains("install.lock"), "{e}");
        assert!(lock.exists(), "a live lock is never removed");
    }
}
