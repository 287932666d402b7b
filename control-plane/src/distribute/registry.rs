//! What the control plane knows about each data plane.
//!
//! Records (region, acked version, last NACK, last seen) are persisted, so
//! `ListDataPlanes` also shows data planes that have not reconnected since a
//! restart. Whether a stream is open is runtime-only: each stream gets an id,
//! and only the stream that registered last may mark its data plane
//! disconnected (a reconnect can overtake the old stream's teardown).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use meridian_common::proto;
use meridian_common::snapshot::Version;
use meridian_common::time::unix_ms;

use crate::store::{DataPlaneRecord, Store};

#[derive(Debug)]
struct Entry {
    record: DataPlaneRecord,
    /// The stream currently serving it, if any.
    stream: Option<u64>,
    /// What that stream's Hello said it serves.
    chain_kinds: Vec<String>,
    /// Networks left out of its table (rule 9 of `snapshot.proto`).
    left_out: Vec<String>,
}

/// Every data plane seen, by id.
#[derive(Debug)]
pub struct DataPlanes {
    entries: Mutex<BTreeMap<String, Entry>>,
    store: Arc<dyn Store>,
    next_stream: AtomicU64,
}

impl DataPlanes {
    /// Loads remembered data planes (all disconnected).
    pub fn load(store: Arc<dyn Store>) -> DataPlanes {
        let records = store.dataplanes().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read remembered data planes");
            Vec::new()
        });
        let entries = records
            .into_iter()
            .map(|record| {
                (
                    record.id.clone(),
                    Entry {
                        record,
                        stream: None,
                        chain_kinds: Vec::new(),
                        left_out: Vec::new(),
                    },
                )
            })
            .collect();
        DataPlanes {
            entries: Mutex::new(entries),
            store,
            next_stream: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(&self, record: &DataPlaneRecord) {
        if let Err(e) = self.store.save_dataplane(record) {
            tracing::warn!(dataplane = %record.id, error = %e, "cannot persist data-plane status");
        }
    }

    /// Registers a stream that said Hello, serving `chain_kinds`; returns
    /// its stream id.
    pub fn connected(&self, id: &str, region: &str, chain_kinds: &[String]) -> u64 {
        let stream = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let record = {
            let mut entries = self.lock();
            let entry = entries.entry(id.to_owned()).or_insert_with(|| Entry {
                record: DataPlaneRecord {
                    id: id.to_owned(),
                    ..Default::default()
                },
                stream: None,
                chain_kinds: Vec::new(),
                left_out: Vec::new(),
            });
            entry.chain_kinds = chain_kinds.to_vec();
            entry.left_out.clear();
            entry.record.region = region.to_owned();
            entry.record.last_seen_unix_ms = unix_ms();
            entry.stream = Some(stream);
            entry.record.clone()
        };
        self.persist(&record);
        stream
    }

    fn update(&self, id: &str, persist: bool, f: impl FnOnce(&mut DataPlaneRecord)) {
        let record = {
            let mut entries = self.lock();
            let Some(entry) = entries.get_mut(id) else {
                return;
            };
            entry.record.last_seen_unix_ms = unix_ms();
            f(&mut entry.record);
            entry.record.clone()
        };
        if persist {
            self.persist(&record);
        }
    }

    /// Stream `stream` of `id` now leaves `networks` out of its table.
    pub fn left_out(&self, id: &str, stream: u64, networks: &[String]) {
        if let Some(entry) = self.lock().get_mut(id)
            && entry.stream == Some(stream)
        {
            entry.left_out = networks.to_vec();
        }
    }

    /// Any message arrived.
    pub fn seen(&self, id: &str) {
        self.update(id, false, |_| {});
    }

    /// It applied `version`; a NACK of an older version is history now.
    pub fn acked(&self, id: &str, version: Version) {
        self.update(id, true, |r| {
            r.acked_version = r.acked_version.max(version);
            if r.nacked_version.is_some_and(|n| n < version) {
                r.nacked_version = None;
                r.nack_error.clear();
            }
        });
    }

    /// It rejected `version` because of `error`.
    pub fn nacked(&self, id: &str, version: Version, error: &str) {
        self.update(id, true, |r| {
            r.nacked_version = Some(version);
            r.nack_error = error.to_owned();
        });
    }

    /// The version `id` last NACKed, unless it ACKed a newer one since.
    pub fn nacked_version(&self, id: &str) -> Option<Version> {
        self.lock().get(id).and_then(|e| e.record.nacked_version)
    }

    /// Stream `stream` of `id` ended.
    pub fn disconnected(&self, id: &str, stream: u64) {
        let record = {
            let mut entries = self.lock();
            match entries.get_mut(id) {
                Some(entry) if entry.stream == Some(stream) => {
                    entry.stream = None;
                    entry.chain_kinds.clear();
                    entry.record.clone()
                }
                _ => return,
            }
        };
        self.persist(&record);
    }

    /// Data planes with an open stream.
    pub fn connected_count(&self) -> usize {
        self.lock().values().filter(|e| e.stream.is_some()).count()
    }

    /// Every data plane, sorted by id, for `ListDataPlanes`.
    pub fn list(&self) -> Vec<proto::DataPlaneStatus> {
        self.lock()
            .values()
            .map(|e| proto::DataPlaneStatus {
                dataplane_id: e.record.id.clone(),
                region: e.record.region.clone(),
                acked_version: (!e.record.acked_version.is_none())
                    .then(|| e.record.acked_version.into()),
                last_seen_unix_ms: e.record.last_seen_unix_ms,
                connected: e.stream.is_some(),
                nacked_version: e.record.nacked_version.map(Into::into),
                nack_error: e.record.nack_error.clone(),
                chain_kinds: e.chain_kinds.clone(),
                left_out_networks: e.left_out.clone(),
            })
            .collect()
    }
}
