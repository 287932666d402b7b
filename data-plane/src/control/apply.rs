//! Validating a snapshot and swapping it in, all or nothing.
//!
//! A snapshot is checked (version present, content hash recomputed, table
//! decoded and validated by `common`), the whole routing table is built
//! aside, and only then stored into the one `ArcSwap`: requests see either
//! the old table or the new one, never a mix. Any failure leaves the old
//! table serving and is reported to the caller for the NACK.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use meridian_common::proto;
use meridian_common::snapshot::{ValidationError, Version, content_hash, decode_table};

use super::persist::SnapshotFile;
use crate::routing::{BuildError, RoutingTable, SnapshotMeta};
use crate::state::Shared;

/// Why a snapshot was rejected (sent back in the NACK).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("snapshot has no version")]
    NoVersion,
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// Validates a snapshot and builds its table, without applying it.
pub fn validate(
    snapshot: &proto::Snapshot,
    region: &str,
    previous: &RoutingTable,
) -> Result<RoutingTable, ApplyError> {
    let version = Version::from(snapshot.version);
    if version.is_none() {
        return Err(ApplyError::NoVersion);
    }
    let table = snapshot
        .table
        .as_ref()
        .ok_or(ValidationError::MissingTable)?;
    let actual = content_hash(table);
    if actual != snapshot.content_hash {
        return Err(ValidationError::HashMismatch {
            claimed: snapshot.content_hash.clone(),
            actual,
        }
        .into());
    }
    let model = decode_table(table.clone())?;
    let meta = SnapshotMeta {
        version,
        content_hash: actual,
    };
    Ok(RoutingTable::build(meta, model, region, previous)?)
}

/// Applies snapshots to one data plane's shared state and persists them.
///
/// Only one task applies at a time (the stream client, or startup before it
/// runs), which is what makes "load the previous table, build, store" safe
/// without a lock.
pub struct Applier {
    shared: Arc<Shared>,
    file: SnapshotFile,
}

impl Applier {
    pub fn new(shared: Arc<Shared>, file: SnapshotFile) -> Self {
        Self { shared, file }
    }

    /// The version and content hash currently serving (for Hello).
    pub fn held(&self) -> SnapshotMeta {
        self.shared.table.load().meta.clone()
    }

    /// Validates `snapshot`, persists it, then swaps it in. Persisting first
    /// means whatever this data plane serves (and reports as its version) is
    /// already on disk, so a restart right after never comes back older.
    /// A failure to persist is logged and counted but does not reject the
    /// snapshot: it is valid, and refusing fresh routing because of a full
    /// disk would hurt more than an older file on restart.
    pub fn apply(&self, snapshot: &proto::Snapshot) -> Result<Version, ApplyError> {
        let previous = self.shared.table.load_full();
        let table = match validate(snapshot, &self.shared.region, &previous) {
            Ok(table) => table,
            Err(e) => {
                self.shared
                    .metrics
                    .snapshots_rejected
                    .fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        let version = table.meta.version;
        if version < previous.meta.version {
            // The control plane is the authority; a lower version means its
            // store was reset. Refusing would strand this data plane forever.
            tracing::warn!(%version, held = %previous.meta.version, "applying an older snapshot version");
        }
        if let Err(e) = self.file.save(snapshot) {
            self.shared
                .metrics
                .persist_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(path = %self.file.path().display(), error = %e, %version, "cannot persist the applied snapshot");
        }
        self.shared.table.store(Arc::new(table));
        self.shared
            .metrics
            .snapshots_applied
            .fetch_add(1, Ordering::Relaxed);
        Ok(version)
    }

    /// Serves the persisted snapshot, if there is a valid one. A missing,
    /// unreadable, corrupt or invalid file is logged and ignored: the data
    /// plane then waits for the control plane instead.
    pub fn restore(&self) -> Option<Version> {
        let snapshot = match self.file.load() {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => {
                tracing::info!(path = %self.file.path().display(), "no persisted snapshot");
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "ignoring the persisted snapshot");
                return None;
            }
        };
        let previous = self.shared.table.load_full();
        match validate(&snapshot, &self.shared.region, &previous) {
            Ok(table) => {
                let version = table.meta.version;
                self.shared.table.store(Arc::new(table));
                tracing::info!(%version, "serving the persisted snapshot");
                Some(version)
            }
            Err(e) => {
                tracing::warn!(path = %self.file.path().display(), error = %e, "ignoring the invalid persisted snapshot");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use meridian_common::snapshot::encode_table;

    use super::*;
    use crate::config::ProxyConfig;
    use crate::routing::table::tests::{model, upstream};

    pub(crate) fn valid_snapshot(seq: u64) -> proto::Snapshot {
        let table = encode_table(&model(
            vec![upstream(
                "a",
                "eu",
                meridian_common::snapshot::UpstreamState::Healthy,
                90,
            )],
            None,
        ));
        proto::Snapshot {
            version: Some(proto::Version { epoch: 1, seq }),
            nonce: "1".into(),
            content_hash: content_hash(&table),
            table: Some(table),
            table_gzip: Default::default(),
        }
    }

    fn applier(dir: &std::path::Path) -> (Applier, Arc<Shared>) {
        let shared = Shared::new(&ProxyConfig::new("http://127.0.0.1:1", "eu", dir)).unwrap();
        (Applier::new(shared.clone(), SnapshotFile::new(dir)), shared)
    }

    #[test]
    fn applies_persists_and_restores() {
        let dir = tempfile::tempdir().unwrap();
        let (a, shared) = applier(dir.path());
        assert_eq!(a.restore(), None);
        assert_eq!(
            a.apply(&valid_snapshot(2)).unwrap(),
            Version { epoch: 1, seq: 2 }
        );
        assert!(shared.table.load().network("eth").is_some());

        let (b, shared) = applier(dir.path());
        assert_eq!(b.restore(), Some(Version { epoch: 1, seq: 2 }));
        assert_eq!(b.held().content_hash, valid_snapshot(2).content_hash);
        assert!(shared.table.load().is_loaded());
    }

    #[test]
    fn rejects_bad_hash_and_duplicates_and_keeps_the_old_table() {
        let dir = tempfile::tempdir().unwrap();
        let (a, shared) = applier(dir.path());
        a.apply(&valid_snapshot(1)).unwrap();

        let mut bad = valid_snapshot(2);
        bad.content_hash = "00".into();
        let err = a.apply(&bad).unwrap_err().to_string();
        assert!(err.contains("content hash mismatch"), "{err}");

        let mut dup = valid_snapshot(3);
        let t = dup.table.as_mut().unwrap();
        let u = t.networks[0].upstreams[0].clone();
        t.networks[0].upstreams.push(u);
        dup.content_hash = content_hash(t);
        let err = a.apply(&dup).unwrap_err().to_string();
        assert!(err.contains("appears twice"), "{err}");

        assert_eq!(
            shared.table.load().meta.version,
            Version { epoch: 1, seq: 1 }
        );
        // The file still holds the last applied one.
        let (b, _) = applier(dir.path());
        assert_eq!(b.restore(), Some(Version { epoch: 1, seq: 1 }));
    }

    #[test]
    fn corrupt_or_tampered_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("snapshot.pb"), b"\x0a\xff\xff garbage").unwrap();
        let (a, shared) = applier(dir.path());
        assert_eq!(a.restore(), None);
        assert!(!shared.table.load().is_loaded());

        let mut tampered = valid_snapshot(1);
        tampered.table.as_mut().unwrap().networks[0].upstreams[0].url =
            "http://evil.example".into();
        SnapshotFile::new(dir.path()).save(&tampered).unwrap();
        assert_eq!(a.restore(), None);
        assert!(!shared.table.load().is_loaded());
    }
}
