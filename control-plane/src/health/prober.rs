//! The probe loop of one network.
//!
//! Every interval it probes the leader and all upstreams at once, judges
//! the round as a whole (the reference height needs every answer), and
//! tells the publisher when a routed view changed, and the heights board
//! after every round (heights move without a new snapshot). A wake-up (an upstream
//! was added) starts a round at once, so a new upstream proves itself as
//! early as the interval allows.

use std::sync::Arc;

use futures_util::future::join_all;
use meridian_common::node_client::NodeClient;
use tokio::sync::{Notify, watch};
use tracing::Instrument as _;

use super::probe::probe;
use crate::inventory::{Inventory, UpstreamProbe};
use crate::snapshot::HeightsBoard;

/// Where a round's results go.
pub struct Sinks {
    /// Poked when a routed view changed: a new snapshot is due.
    pub dirty: Arc<Notify>,
    /// Refreshed after every round.
    pub heights: Arc<HeightsBoard>,
}

/// Runs probe rounds of `network` until `shutdown` turns true.
pub async fn run(
    network: String,
    inventory: Arc<Inventory>,
    client: NodeClient,
    wake: Arc<Notify>,
    sinks: Sinks,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let Some(interval) = round(&network, &inventory, &client, &sinks).await else {
            return;
        };
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = wake.notified() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// One probe round; returns the interval until the next, or `None` if the
/// network is gone.
pub async fn round(
    network: &str,
    inventory: &Inventory,
    client: &NodeClient,
    sinks: &Sinks,
) -> Option<std::time::Duration> {
    let targets = inventory.probe_targets(network)?;
    let leader = async {
        match &targets.leader {
            Some(url) => Some(
                probe(client, targets.chain, url, targets.timeout)
                    .instrument(tracing::info_span!("probe", network, upstream = "leader"))
                    .await,
            ),
            None => None,
        }
    };
    let upstreams = join_all(targets.upstreams.iter().map(|(id, url, generation)| {
        let span = tracing::info_span!("probe", network, upstream = %id);
        async move {
            let outcome = probe(client, targets.chain, url, targets.timeout).await;
            if let Err(why) = &outcome.result {
                tracing::debug!(error = %why, "probe failed");
            }
            UpstreamProbe {
                id: id.clone(),
                generation: *generation,
                outcome,
            }
        }
        .instrument(span)
    }));
    let (leader, upstreams) = tokio::join!(leader, upstreams);
    if let Some(Err(why)) = leader.as_ref().map(|l| &l.result) {
        tracing::debug!(network, error = %why, "leader probe failed");
    }
    if inventory.apply_round(network, leader.as_ref(), &upstreams) {
        sinks.dirty.notify_one();
    }
    sinks.heights.refresh(inventory);
    Some(targets.interval)
}
