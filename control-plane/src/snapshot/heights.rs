//! Heights: how far each network's chain is, streamed apart from snapshots
//! (rule 8 of `snapshot.proto`).
//!
//! The routed view of an upstream only follows its live head on a state
//! change or a large score move, so a snapshot's heights go stale on a
//! steady chain; republishing the whole table for every block would make
//! "an unchanged state publishes nothing" meaningless. Instead each probe
//! round refreshes this small message, which is encoded once per change
//! (as the whole `ControlPlaneMessage`, which needs no per-stream nonce) and
//! shared by every stream through a `watch`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use meridian_common::proto;
use prost::Message as _;
use tokio::sync::watch;

use crate::inventory::{Inventory, NetworkState};

/// One encoded `Heights`, shared by every stream.
#[derive(Debug)]
pub struct PublishedHeights {
    /// `ControlPlaneMessage { heights }`, encoded once.
    pub encoded: Bytes,
    /// The same, decoded: what a refresh compares with.
    pub heights: proto::Heights,
}

/// The latest heights, as every stream sees them.
pub type CurrentHeights = watch::Receiver<Option<Arc<PublishedHeights>>>;

/// Keeps the current heights and tells the streams when they change.
#[derive(Debug)]
pub struct HeightsBoard {
    tx: watch::Sender<Option<Arc<PublishedHeights>>>,
    /// Serialises build-compare-send between the networks' probers.
    refresh: Mutex<()>,
}

impl Default for HeightsBoard {
    fn default() -> Self {
        Self {
            tx: watch::channel(None).0,
            refresh: Mutex::new(()),
        }
    }
}

impl HeightsBoard {
    /// A receiver of every change.
    pub fn subscribe(&self) -> CurrentHeights {
        self.tx.subscribe()
    }

    /// The heights now, if any was sent.
    pub fn current(&self) -> Option<Arc<PublishedHeights>> {
        self.tx.borrow().clone()
    }

    /// Rebuilds the heights from the inventory (after a probe round) and
    /// sends them if they differ from the current ones. Returns whether
    /// they were sent.
    pub fn refresh(&self, inventory: &Inventory) -> bool {
        let _serial = self.refresh.lock().unwrap_or_else(|p| p.into_inner());
        let heights = inventory.read(build);
        if self
            .tx
            .borrow()
            .as_ref()
            .is_some_and(|p| p.heights == heights)
        {
            return false;
        }
        let message = proto::ControlPlaneMessage {
            message: Some(proto::control_plane_message::Message::Heights(
                heights.clone(),
            )),
        };
        let encoded = Bytes::from(message.encode_to_vec());
        self.tx
            .send_replace(Some(Arc::new(PublishedHeights { encoded, heights })));
        true
    }
}

/// The heights of `networks`, sorted by network id; networks whose head is
/// not known yet are left out.
fn build(networks: &BTreeMap<String, NetworkState>) -> proto::Heights {
    proto::Heights {
        networks: networks
            .iter()
            .filter_map(|(id, n)| {
                let head = n.reference_height?;
                Some(proto::NetworkHeights {
                    network: id.clone(),
                    head,
                    // 0 is "unknown" on the wire.
                    finalized: n.finality.height().unwrap_or(0),
                })
            })
            .collect(),
    }
}
