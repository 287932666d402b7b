//! Publishing snapshots: debounced, deduplicated, encoded once.
//!
//! Changes (probe verdicts, admin edits) only poke a `Notify`; the publisher
//! waits a short debounce so a burst of changes becomes one version, builds
//! the table, and publishes a new version only when the content hash
//! differs from the current one. Each version is encoded to protobuf once;
//! every stream sends those same bytes (plus its own nonce), so the cost of
//! a publication does not grow with the number of data planes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use meridian_common::proto;
use meridian_common::snapshot::{RoutingTable, Version, content_hash, decode_table, encode_table};
use meridian_common::time::unix_ms;
use prost::Message as _;
use tokio::sync::{Notify, watch};

use super::builder::build;
use crate::inventory::Inventory;
use crate::store::Store;

/// Time a change waits for company before it is published. Well inside
/// the 100 ms the issue allows, long enough to merge a burst of verdicts.
pub const DEBOUNCE: Duration = Duration::from_millis(20);

/// One published version, shared by every stream.
#[derive(Debug)]
pub struct Published {
    pub version: Version,
    pub content_hash: String,
    /// `snapshot` encoded once, with an empty nonce; streams append theirs.
    pub encoded: Bytes,
    /// The decoded form (nonce empty), for `GetSnapshot` and tests.
    pub snapshot: proto::Snapshot,
}

/// The latest publication, as every consumer sees it.
pub type Current = watch::Receiver<Option<Arc<Published>>>;

/// Builds and publishes snapshots.
#[derive(Debug)]
pub struct Publisher {
    inventory: Arc<Inventory>,
    store: Arc<dyn Store>,
    epoch: u64,
    /// Guards the seq and serialises build-compare-publish.
    seq: Mutex<u64>,
    tx: watch::Sender<Option<Arc<Published>>>,
    publications: AtomicU64,
}

impl Publisher {
    /// A publisher for `epoch` (already persisted); nothing is published yet.
    pub fn new(epoch: u64, inventory: Arc<Inventory>, store: Arc<dyn Store>) -> Publisher {
        Publisher {
            inventory,
            store,
            epoch,
            seq: Mutex::new(0),
            tx: watch::channel(None).0,
            publications: AtomicU64::new(0),
        }
    }

    /// A receiver of every publication.
    pub fn subscribe(&self) -> Current {
        self.tx.subscribe()
    }

    /// The current publication, if any.
    pub fn current(&self) -> Option<Arc<Published>> {
        self.tx.borrow().clone()
    }

    /// The current version (`Version::NONE` before the first publication).
    pub fn current_version(&self) -> Version {
        self.tx
            .borrow()
            .as_ref()
            .map_or(Version::NONE, |p| p.version)
    }

    /// Publications since start.
    pub fn publications(&self) -> u64 {
        self.publications.load(Ordering::Relaxed)
    }

    /// Builds the table; publishes a new version if its content hash differs
    /// from the current one. Returns the new publication, if any.
    pub fn publish_if_changed(&self) -> Option<Arc<Published>> {
        let mut seq = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        let table = self.inventory.read(|networks| build(networks, unix_ms()));
        let table = encode_table(&table);
        let hash = content_hash(&table);
        if self
            .tx
            .borrow()
            .as_ref()
            .is_some_and(|p| p.content_hash == hash)
        {
            return None;
        }
        *seq += 1;
        let version = Version {
            epoch: self.epoch,
            seq: *seq,
        };
        let span = tracing::info_span!("publish", version = %version, content_hash = %hash);
        let _entered = span.enter();
        let snapshot = proto::Snapshot {
            version: Some(version.into()),
            nonce: String::new(),
            content_hash: hash.clone(),
            table: Some(table),
        };
        let encoded = Bytes::from(snapshot.encode_to_vec());
        if let Err(e) = self.store.save_snapshot(&encoded) {
            // Data planes still get it; only the restart seed is older.
            tracing::warn!(error = %e, "cannot persist the published snapshot");
        }
        let published = Arc::new(Published {
            version,
            content_hash: hash,
            encoded,
            snapshot,
        });
        self.tx.send_replace(Some(published.clone()));
        self.publications.fetch_add(1, Ordering::Relaxed);
        tracing::info!(bytes = published.encoded.len(), "published snapshot");
        Some(published)
    }

    /// Publishes after every poke of `dirty` (debounced) until `shutdown`.
    pub async fn run(self: Arc<Self>, dirty: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = dirty.notified() => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            tokio::time::sleep(DEBOUNCE).await;
            self.publish_if_changed();
        }
    }
}

/// The routing table of a stored snapshot, if it decodes and validates.
pub fn decode_stored(bytes: &[u8]) -> Option<RoutingTable> {
    let snapshot = proto::Snapshot::decode(bytes)
        .map_err(|e| tracing::warn!(error = %e, "stored snapshot does not decode; ignored"))
        .ok()?;
    decode_table(snapshot.table?)
        .map_err(|e| tracing::warn!(error = %e, "stored snapshot is invalid; ignored"))
        .ok()
}
