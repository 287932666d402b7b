//! [`Store`] on sled.
//!
//! Layout: tree `meta` (`epoch` as u64 big-endian, `snapshot` as protobuf
//! bytes), tree `upstreams` and tree `tombstones` keyed by
//! `network \0 upstream`, tree `dataplanes` keyed by data-plane id. Records
//! are JSON so they stay readable and can grow fields.
//!
//! The handles live behind a lock with an `Option`, so [`Store::close`]
//! really drops every `sled::Db`/`sled::Tree` clone, releasing the file lock
//! even if some task still holds an `Arc` to this store. Dropping them is
//! not yet the release: sled's own I/O threads let go of the file a moment
//! later (a reopen at once failed now and then with "could not acquire
//! lock" on a loaded machine), so `close` returns only once the lock (an
//! `flock` on `<dir>/db`) can be taken, and a new store in the same process
//! can open at once.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use meridian_common::snapshot::{Role, Version};
use serde::{Deserialize, Serialize};
use sled::Transactional;

use super::{DataPlaneRecord, Store, StoreError};
use crate::inventory::UpstreamSpec;

const EPOCH: &[u8] = b"epoch";
const SNAPSHOT: &[u8] = b"snapshot";

struct Open {
    db: sled::Db,
    meta: sled::Tree,
    upstreams: sled::Tree,
    tombstones: sled::Tree,
    dataplanes: sled::Tree,
}

/// The sled-backed store.
pub struct SledStore {
    inner: Arc<Inner>,
    /// The file sled locks while the store is open.
    lock_file: PathBuf,
}

struct Inner {
    open: RwLock<Option<Open>>,
    /// Held by every flush: never two at once.
    flushing: Mutex<()>,
}

/// How often writes that do not flush by themselves reach the disk.
const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// Longest wait in [`Store::close`] for sled to let go of its file lock.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits until nobody holds the `flock` on `file` (sled's lock), or
/// [`RELEASE_TIMEOUT`] passed.
fn wait_released(file: &Path) -> Result<(), StoreError> {
    let started = Instant::now();
    loop {
        let probe = match std::fs::File::open(file) {
            Ok(f) => f,
            // No file, no lock to wait for.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::Release(e.to_string())),
        };
        match probe.try_lock() {
            // Dropping `probe` releases our own lock at once.
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < RELEASE_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Release(format!(
                    "{} still locked {RELEASE_TIMEOUT:?} after close",
                    file.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Release(e.to_string()));
            }
        }
    }
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct UpstreamRecord {
    id: String,
    url: String,
    region: String,
    weight: u32,
    roles: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct DataPlaneJson {
    id: String,
    region: String,
    acked: (u64, u64),
    last_seen_unix_ms: u64,
    nacked: Option<(u64, u64)>,
    nack_error: String,
}

fn key(network: &str, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(network.len() + id.len() + 1);
    k.extend_from_slice(network.as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

fn split_key(k: &[u8]) -> Result<(String, String), StoreError> {
    let text = String::from_utf8_lossy(k);
    match text.split_once('\0') {
        Some((n, i)) => Ok((n.to_owned(), i.to_owned())),
        None => Err(StoreError::Corrupt {
            key: text.into_owned(),
            reason: "key lacks the network separator".into(),
        }),
    }
}

fn corrupt(k: &[u8], e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(k).into_owned(),
        reason: e.to_string(),
    }
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        let db = sled::Config::new().path(dir).flush_every_ms(None).open()?;
        let open = Open {
            meta: db.open_tree("meta")?,
            upstreams: db.open_tree("upstreams")?,
            tombstones: db.open_tree("tombstones")?,
            dataplanes: db.open_tree("dataplanes")?,
            db,
        };
        let inner = Arc::new(Inner {
            open: RwLock::new(Some(open)),
            flushing: Mutex::new(()),
        });
        let flusher = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("meridian-store-flush".into())
            .spawn(move || flush_periodically(&flusher))
            .map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
        Ok(SledStore {
            inner,
            lock_file: dir.join("db"),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Open) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.inner.with(f)
    }
}

impl Inner {
    fn with<T>(&self, f: impl FnOnce(&Open) -> Result<T, StoreError>) -> Result<T, StoreError> {
        // A poisoned lock only means another thread panicked mid-call; the
        // sled handles themselves stay consistent.
        let guard = self.open.read().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(open) => f(open),
            None => Err(StoreError::Closed),
        }
    }
}

impl Open {
    /// Flushes under `lock`, the one flush at a time.
    fn flush(&self, lock: &Mutex<()>) -> Result<(), StoreError> {
        let _one = lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.db.flush()?;
        Ok(())
    }
}

/// Flushes every [`FLUSH_EVERY`] until the store is closed or dropped.
fn flush_periodically(inner: &Weak<Inner>) {
    loop {
        std::thread::sleep(FLUSH_EVERY);
        let Some(inner) = inner.upgrade() else {
            return;
        };
        match inner.with(|o| o.flush(&inner.flushing)) {
            Ok(()) => {}
            Err(StoreError::Closed) => return,
            Err(e) => tracing::warn!(error = %e, "periodic store flush failed"),
        }
    }
}

impl Store for SledStore {
    fn next_epoch(&self) -> Result<u64, StoreError> {
        self.with(|o| {
            let current = match o.meta.get(EPOCH)? {
                Some(v) => {
                    let bytes: [u8; 8] = v
                        .as_ref()
                        .try_into()
                        .map_err(|_| corrupt(EPOCH, format!("{} bytes instead of 8", v.len())))?;
                    u64::from_be_bytes(bytes)
                }
                None => 0,
            };
            let next = current.saturating_add(1);
            o.meta.insert(EPOCH, &next.to_be_bytes())?;
            o.flush(&self.inner.flushing)?;
            Ok(next)
        })
    }

    fn runtime_upstreams(&self) -> Result<Vec<(String, UpstreamSpec)>, StoreError> {
        self.with(|o| {
            let mut out = Vec::new();
            for entry in o.upstreams.iter() {
                let (k, v) = entry?;
                let (network, _) = split_key(&k)?;
                let r: UpstreamRecord = serde_json::from_slice(&v).map_err(|e| corrupt(&k, e))?;
                let roles = r
                    .roles
                    .iter()
                    .map(|s| s.parse::<Role>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| corrupt(&k, e))?;
                out.push((
                    network,
                    UpstreamSpec {
                        id: r.id,
                        url: r.url,
                        region: r.region,
                        weight: r.weight,
                        roles,
                    },
                ));
            }
            Ok(out)
        })
    }

    fn tombstones(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.with(|o| o.tombstones.iter().keys().map(|k| split_key(&k?)).collect())
    }

    fn add_upstream(&self, network: &str, spec: &UpstreamSpec) -> Result<(), StoreError> {
        let record = UpstreamRecord {
            id: spec.id.clone(),
            url: spec.url.clone(),
            region: spec.region.clone(),
            weight: spec.weight,
            roles: spec.roles.iter().map(|r| r.as_str().to_owned()).collect(),
        };
        let k = key(network, &spec.id);
        let v = serde_json::to_vec(&record).map_err(|e| corrupt(&k, e))?;
        self.with(|o| {
            o.upstreams.insert(k, v)?;
            o.flush(&self.inner.flushing)
        })
    }

    fn remove_upstream(&self, network: &str, id: &str, tombstone: bool) -> Result<(), StoreError> {
        let k = key(network, id);
        self.with(|o| {
            (&o.upstreams, &o.tombstones)
                .transaction(|(upstreams, tombstones)| {
                    upstreams.remove(k.as_slice())?;
                    if tombstone {
                        tombstones.insert(k.as_slice(), &[][..])?;
                    }
                    Ok(())
                })
                .map_err(|e: sled::transaction::TransactionError<()>| match e {
                    sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
                    sled::transaction::TransactionError::Abort(()) => {
                        StoreError::Sled(sled::Error::Unsupported("aborted".into()))
                    }
                })?;
            o.flush(&self.inner.flushing)
        })
    }

    fn save_snapshot(&self, encoded: &[u8]) -> Result<(), StoreError> {
        self.with(|o| {
            o.meta.insert(SNAPSHOT, encoded)?;
            Ok(())
        })
    }

    fn last_snapshot(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|o| Ok(o.meta.get(SNAPSHOT)?.map(|v| v.to_vec())))
    }

    fn save_dataplane(&self, r: &DataPlaneRecord) -> Result<(), StoreError> {
        let json = DataPlaneJson {
            id: r.id.clone(),
            region: r.region.clone(),
            acked: (r.acked_version.epoch, r.acked_version.seq),
            last_seen_unix_ms: r.last_seen_unix_ms,
            nacked: r.nacked_version.map(|v| (v.epoch, v.seq)),
            nack_error: r.nack_error.clone(),
        };
        let v = serde_json::to_vec(&json).map_err(|e| corrupt(r.id.as_bytes(), e))?;
        self.with(|o| {
            o.dataplanes.insert(r.id.as_bytes(), v)?;
            Ok(())
        })
    }

    fn dataplanes(&self) -> Result<Vec<DataPlaneRecord>, StoreError> {
        self.with(|o| {
            let mut out = Vec::new();
            for entry in o.dataplanes.iter() {
                let (k, v) = entry?;
                let j: DataPlaneJson = serde_json::from_slice(&v).map_err(|e| corrupt(&k, e))?;
                out.push(DataPlaneRecord {
                    id: j.id,
                    region: j.region,
                    acked_version: Version {
                        epoch: j.acked.0,
                        seq: j.acked.1,
                    },
                    last_seen_unix_ms: j.last_seen_unix_ms,
                    nacked_version: j.nacked.map(|(epoch, seq)| Version { epoch, seq }),
                    nack_error: j.nack_error,
                });
            }
            Ok(out)
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.with(|o| o.flush(&self.inner.flushing))
    }

    fn close(&self) -> Result<(), StoreError> {
        let taken = self
            .inner
            .open
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match taken {
            Some(open) => {
                let flushed = open.flush(&self.inner.flushing);
                drop(open);
                let released = wait_released(&self.lock_file);
                flushed.and(released)
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str) -> UpstreamSpec {
        UpstreamSpec {
            id: id.into(),
            url: format!("http://127.0.0.1:1/{id}"),
            region: "eu".into(),
            weight: 2,
            roles: vec![Role::Read, Role::Archive],
        }
    }

    #[test]
    fn a_closed_store_can_be_opened_again_at_once() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..200 {
            let store = SledStore::open(dir.path())
                .unwrap_or_else(|e| panic!("open {round} after close: {e}"));
            store.add_upstream("eth", &spec("x")).unwrap();
            store.close().unwrap();
            assert!(matches!(store.next_epoch(), Err(StoreError::Closed)));
        }
    }

    #[test]
    fn survives_reopen_in_the_same_process() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.next_epoch().unwrap(), 1);
        store.add_upstream("eth", &spec("x")).unwrap();
        store.add_upstream("eth", &spec("y")).unwrap();
        store.remove_upstream("eth", "y", false).unwrap();
        store.remove_upstream("eth", "cfg", true).unwrap();
        store.save_snapshot(b"snap").unwrap();
        let dp = DataPlaneRecord {
            id: "eu-1".into(),
            region: "eu".into(),
            acked_version: Version { epoch: 1, seq: 3 },
            last_seen_unix_ms: 42,
            nacked_version: Some(Version { epoch: 1, seq: 2 }),
            nack_error: "bad".into(),
        };
        store.save_dataplane(&dp).unwrap();
        store.close().unwrap();
        assert!(matches!(store.next_epoch(), Err(StoreError::Closed)));

        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.next_epoch().unwrap(), 2);
        assert_eq!(
            store.runtime_upstreams().unwrap(),
            vec![("eth".to_owned(), spec("x"))]
        );
        assert_eq!(
            store.tombstones().unwrap(),
            vec![("eth".to_owned(), "cfg".to_owned())]
        );
        assert_eq!(
            store.last_snapshot().unwrap().as_deref(),
            Some(&b"snap"[..])
        );
        assert_eq!(store.dataplanes().unwrap(), vec![dp]);
        store.close().unwrap();
    }
}
