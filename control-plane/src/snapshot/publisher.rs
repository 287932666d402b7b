//! Publishing snapshots: debounced, deduplicated, encoded once.
//!
//! Changes (probe verdicts, admin edits) only poke a `Notify`; the publisher
//! waits a short debounce so a burst of changes becomes one version, builds
//! the table, and publishes a new version only when the content hash
//! differs from the current one. Each version is encoded to protobuf once,
//! in two forms: the table plain, and the table gzip-compressed into
//! `table_gzip` (for data planes whose Hello accepts it). Every stream sends
//! one of those same byte strings (plus its own nonce), so the cost of a
//! publication does not grow with the number of data planes. A data plane
//! that does not serve every chain kind in the table gets the table without
//! those networks (`snapshot.proto`, rule 9): encoded once per version and
//! set of kinds, on the first stream that needs it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use meridian_common::chain::{ChainKind, ChainKinds};
use meridian_common::proto;
use meridian_common::snapshot::{
    RoutingTable, Version, content_hash, decode_table, encode_table, gzip_table,
};
use meridian_common::time::unix_ms;
use prost::Message as _;
use tokio::sync::{Notify, watch};

use super::builder::build;
use crate::inventory::Inventory;
use crate::store::Store;

/// Time a change waits for company before it is published. Well inside
/// the 100 ms the issue allows, long enough to merge a burst of verdicts.
pub const DEBOUNCE: Duration = Duration::from_millis(20);

/// One version's table as some data planes get it, encoded once.
#[derive(Debug)]
pub struct Form {
    /// The content hash of the networks this form carries.
    pub content_hash: String,
    /// The snapshot encoded once, with an empty nonce; streams append theirs.
    pub encoded: Bytes,
    /// The same with the table in `table_gzip` (compressed once), for data
    /// planes that accept it.
    pub encoded_gzip: Bytes,
    /// Networks of the version that this form leaves out (their chain kind
    /// is not served by the data planes that get it), sorted.
    pub left_out: Vec<String>,
}

impl Form {
    /// `table` (whose content hash is `content_hash`) encoded as `version`.
    fn encode(
        version: Version,
        table: proto::RoutingTable,
        content_hash: String,
        left_out: Vec<String>,
    ) -> Form {
        let encoded_gzip = Bytes::from(
            proto::Snapshot {
                version: Some(version.into()),
                nonce: String::new(),
                content_hash: content_hash.clone(),
                table: None,
                table_gzip: gzip_table(&table),
            }
            .encode_to_vec(),
        );
        let encoded = Bytes::from(
            proto::Snapshot {
                version: Some(version.into()),
                nonce: String::new(),
                content_hash: content_hash.clone(),
                table: Some(table),
                table_gzip: Default::default(),
            }
            .encode_to_vec(),
        );
        Form {
            content_hash,
            encoded,
            encoded_gzip,
            left_out,
        }
    }
}

/// One published version, shared by every stream.
#[derive(Debug)]
pub struct Published {
    pub version: Version,
    /// The whole table: what every data plane serving all of its chain
    /// kinds gets.
    pub full: Arc<Form>,
    /// The decoded form of `full` (nonce empty), for `GetSnapshot` and tests.
    pub snapshot: proto::Snapshot,
    /// The chain kinds of the table's networks.
    kinds: ChainKinds,
    /// Forms without some kinds, built on first demand.
    narrower: Mutex<Vec<(ChainKinds, Arc<Form>)>>,
}

impl Published {
    /// `snapshot` (with its table) published as `version`.
    fn new(version: Version, snapshot: proto::Snapshot, full: Form) -> Published {
        let kinds = snapshot.table.as_ref().map_or(ChainKinds::none(), |t| {
            ChainKinds::from_kinds(t.networks.iter().filter_map(|n| n.chain.parse().ok()))
        });
        Published {
            version,
            full: Arc::new(full),
            snapshot,
            kinds,
            narrower: Mutex::new(Vec::new()),
        }
    }

    /// The content hash of the whole table.
    pub fn content_hash(&self) -> &str {
        &self.full.content_hash
    }

    /// The form for a data plane that serves `serves`: the whole table
    /// when it serves every kind in it, else the table without the networks
    /// of the other kinds (encoded on the first call for that set).
    pub fn form_for(&self, serves: ChainKinds) -> Arc<Form> {
        if serves.covers(self.kinds) {
            return self.full.clone();
        }
        let mut narrower = self.narrower.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, form)) = narrower.iter().find(|(k, _)| *k == serves) {
            return form.clone();
        }
        let mut table = self.snapshot.table.clone().unwrap_or_default();
        let mut left_out = Vec::new();
        table.networks.retain(|n| {
            let served = n
                .chain
                .parse::<ChainKind>()
                .is_ok_and(|k| serves.contains(k));
            if !served {
                left_out.push(n.id.clone());
            }
            served
        });
        left_out.sort();
        let hash = content_hash(&table);
        let form = Arc::new(Form::encode(self.version, table, hash, left_out));
        narrower.push((serves, form.clone()));
        form
    }
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
            .is_some_and(|p| p.content_hash() == hash)
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
            table: Some(table.clone()),
            table_gzip: Default::default(),
        };
        let full = Form::encode(version, table, hash, Vec::new());
        if let Err(e) = self.store.save_snapshot(&full.encoded) {
            // Data planes still get it; only the restart seed is older.
            tracing::warn!(error = %e, "cannot persist the published snapshot");
        }
        let published = Arc::new(Published::new(version, snapshot, full));
        self.tx.send_replace(Some(published.clone()));
        self.publications.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            bytes = published.full.encoded.len(),
            gzip_bytes = published.full.encoded_gzip.len(),
            "published snapshot"
        );
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use meridian_common::snapshot::UpstreamState;

    use super::*;
    use crate::config::ControlConfig;
    use crate::health::{ProbeAnswer, ProbeOutcome};
    use crate::inventory::UpstreamProbe;
    use crate::store::SledStore;

    const CONFIG: &str = r#"
[[networks]]
id = "eth"
chain = "evm"
healthy_after = 1
unhealthy_after = 1

[[networks.upstreams]]
id = "b"
url = "http://127.0.0.1:2"

[[networks.upstreams]]
id = "a"
url = "http://127.0.0.1:1"
"#;

    fn probes(inventory: &Inventory, height: u64, latency_ms: u64) -> Vec<UpstreamProbe> {
        let targets = inventory.probe_targets("eth").unwrap();
        targets
            .upstreams
            .into_iter()
            .map(|(id, _, generation)| UpstreamProbe {
                id,
                generation,
                outcome: ProbeOutcome {
                    latency: Duration::from_millis(latency_ms),
                    result: Ok(ProbeAnswer {
                        height,
                        chain_id: "1".into(),
                        finalized: None,
                    }),
                },
            })
            .collect()
    }

    #[test]
    fn the_reference_height_drops_only_after_a_lasting_dip() {
        use crate::inventory::REFERENCE_DIP_ROUNDS;
        let config = ControlConfig::from_toml_str(CONFIG, Path::new("t.toml")).unwrap();
        let inventory = Inventory::new(&config, Vec::new(), &[], None);
        let reference = || inventory.read(|n| n["eth"].reference_height);
        inventory.apply_round("eth", None, &probes(&inventory, 100, 1));
        assert_eq!(reference(), Some(100));
        for _ in 1..REFERENCE_DIP_ROUNDS {
            inventory.apply_round("eth", None, &probes(&inventory, 90, 1));
            assert_eq!(reference(), Some(100), "one missed round is no drop");
        }
        inventory.apply_round("eth", None, &probes(&inventory, 105, 1));
        inventory.apply_round("eth", None, &probes(&inventory, 90, 1));
        assert_eq!(reference(), Some(105), "a higher round ends the dip");
        for _ in 1..REFERENCE_DIP_ROUNDS {
            inventory.apply_round("eth", None, &probes(&inventory, 90, 1));
        }
        assert_eq!(
            reference(),
            Some(90),
            "a lasting drop is taken (a chain reset)"
        );
    }

    #[test]
    fn unchanged_routing_state_publishes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
        let config = ControlConfig::from_toml_str(CONFIG, Path::new("t.toml")).unwrap();
        let inventory = Arc::new(Inventory::new(&config, Vec::new(), &[], None));
        let publisher = Publisher::new(7, inventory.clone(), store.clone());

        let first = publisher.publish_if_changed().unwrap();
        assert_eq!(first.version, Version { epoch: 7, seq: 1 });
        let table = first.snapshot.table.as_ref().unwrap();
        let ids: Vec<_> = table.networks[0]
            .upstreams
            .iter()
            .map(|u| u.id.as_str())
            .collect();
        assert_eq!(ids, ["a", "b"], "sorted by id");
        assert!(publisher.publish_if_changed().is_none());

        assert!(inventory.apply_round("eth", None, &probes(&inventory, 10, 1)));
        let second = publisher.publish_if_changed().unwrap();
        assert_eq!(second.version.seq, 2);
        let decoded = decode_stored(&store.last_snapshot().unwrap().unwrap()).unwrap();
        assert!(
            decoded.networks[0]
                .upstreams
                .iter()
                .all(|u| u.state == UpstreamState::Healthy)
        );

        // New blocks and latency wobble are live data, not routing changes.
        assert!(!inventory.apply_round("eth", None, &probes(&inventory, 11, 2)));
        assert!(publisher.publish_if_changed().is_none());
        // A big latency change moves the score by more than SCORE_STEP.
        assert!(inventory.apply_round("eth", None, &probes(&inventory, 12, 900)));
        assert_eq!(publisher.publish_if_changed().unwrap().version.seq, 3);
        assert_eq!(publisher.publications(), 3);
    }

    #[test]
    fn the_encoded_bytes_are_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
        let config = ControlConfig::from_toml_str(CONFIG, Path::new("t.toml")).unwrap();
        let inventory = Arc::new(Inventory::new(&config, Vec::new(), &[], None));
        let p = Publisher::new(1, inventory, store)
            .publish_if_changed()
            .unwrap();
        let decoded = proto::Snapshot::decode(p.full.encoded.clone()).unwrap();
        assert_eq!(decoded, p.snapshot);
        assert_eq!(
            content_hash(decoded.table.as_ref().unwrap()),
            p.content_hash()
        );
    }
}
