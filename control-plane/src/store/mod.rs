//! What the control plane keeps across restarts.
//!
//! The [`Store`] trait names the facts; [`SledStore`] keeps them in sled.
//! Every write that changes more than one key is one sled transaction, so a
//! crash never leaves half of an admin change behind.

mod sled_store;

use meridian_common::snapshot::Version;

use crate::inventory::UpstreamSpec;

pub use sled_store::SledStore;

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store: record {key:?} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("store is closed")]
    Closed,
    /// Closing did not give the file lock back.
    #[error("store: releasing the file lock: {0}")]
    Release(String),
}

/// What the control plane remembers about one data plane.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataPlaneRecord {
    /// The id from its `Hello`.
    pub id: String,
    /// The region from its `Hello`.
    pub region: String,
    /// Last version it ACKed (`Version::NONE` if none).
    pub acked_version: Version,
    /// Unix ms of the last message from it.
    pub last_seen_unix_ms: u64,
    /// Last version it NACKed, unless it ACKed a later one since.
    pub nacked_version: Option<Version>,
    /// The error of that NACK.
    pub nack_error: String,
}

/// The durable facts of the control plane.
pub trait Store: std::fmt::Debug + Send + Sync + 'static {
    /// Reads the epoch, adds one, persists and flushes it, and returns it.
    /// Called once per start, before the first publication.
    fn next_epoch(&self) -> Result<u64, StoreError>;

    /// Upstreams added through the admin API, with their network id.
    fn runtime_upstreams(&self) -> Result<Vec<(String, UpstreamSpec)>, StoreError>;

    /// `(network, upstream)` ids of config-file upstreams removed at runtime.
    fn tombstones(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Persists (and flushes) a runtime upstream.
    fn add_upstream(&self, network: &str, spec: &UpstreamSpec) -> Result<(), StoreError>;

    /// Deletes the runtime upstream `id` (if any) and, when `tombstone` is
    /// set, records that the config-file upstream `id` stays removed; both in
    /// one transaction, flushed.
    fn remove_upstream(&self, network: &str, id: &str, tombstone: bool) -> Result<(), StoreError>;

    /// Replaces the last published snapshot (protobuf bytes).
    fn save_snapshot(&self, encoded: &[u8]) -> Result<(), StoreError>;

    /// The last published snapshot, if any.
    fn last_snapshot(&self) -> Result<Option<Vec<u8>>, StoreError>;

    /// Inserts or replaces a data plane's record.
    fn save_dataplane(&self, record: &DataPlaneRecord) -> Result<(), StoreError>;

    /// Every remembered data plane.
    fn dataplanes(&self) -> Result<Vec<DataPlaneRecord>, StoreError>;

    /// Makes every write so far durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// Flushes and releases the underlying database (and its file lock);
    /// later calls fail with [`StoreError::Closed`].
    fn close(&self) -> Result<(), StoreError>;
}
