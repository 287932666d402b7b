//! The `SnapshotService.Stream` client: one stream to the control plane,
//! reopened forever.
//!
//! Each session opens the stream, sends `Hello` with the version and content
//! hash already held (so an up-to-date data plane gets no resend), then
//! answers every `Snapshot` with exactly one `Ack` or `Nack`, and moves its
//! networks' heights on every `Heights` (no answer: rule 8). HTTP/2
//! keepalive pings run even while idle, so a dead control plane ends the
//! session within seconds; the client then waits a jittered exponential
//! backoff (reset after every session that was established) and starts over.
//! The request path never waits on any of this: it only sees the table.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};
use meridian_common::chain::ChainKinds;
use meridian_common::proto;
use meridian_common::proto::control_plane_message::Message as Inbound;
use meridian_common::proto::data_plane_message::Message as Outbound;
use meridian_common::proto::snapshot_service_client::SnapshotServiceClient;
use meridian_common::snapshot::{Version, inflate_table};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;
use tonic::transport::Endpoint;
use tracing::Instrument as _;

use super::apply::Applier;
use crate::config::ProxyConfig;
use crate::state::Shared;
use meridian_common::error_chain::error_chain;

/// Why one session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot connect to the control plane: {0}")]
    Connect(#[source] tonic::transport::Error),
    #[error("snapshot stream failed: {0}")]
    Rpc(#[from] tonic::Status),
    #[error("the control plane closed the stream")]
    Closed,
}

/// A malformed control-plane address, refused at start.
#[derive(Debug, thiserror::Error)]
#[error("bad control-plane address {url:?}: {source}")]
pub struct BadControlPlane {
    pub url: String,
    #[source]
    pub source: tonic::transport::Error,
}

/// The stream client of one data plane.
pub struct ControlClient {
    endpoint: Endpoint,
    dataplane_id: String,
    region: String,
    max_snapshot_bytes: usize,
    backoff: ExponentialBuilder,
    reconnect_max: Duration,
    applier: Arc<Applier>,
    shared: Arc<Shared>,
}

impl ControlClient {
    /// A client for `config.control_plane`; the address is checked here so a
    /// typo fails at start instead of retrying forever.
    pub fn new(
        config: &ProxyConfig,
        applier: Arc<Applier>,
        shared: Arc<Shared>,
    ) -> Result<Self, BadControlPlane> {
        let endpoint = Endpoint::from_shared(config.control_plane.clone())
            .map_err(|source| BadControlPlane {
                url: config.control_plane.clone(),
                source,
            })?
            .connect_timeout(config.control_connect_timeout)
            .http2_keep_alive_interval(config.control_keepalive_interval)
            .keep_alive_timeout(config.control_keepalive_timeout)
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        let backoff = ExponentialBuilder::new()
            .with_min_delay(config.reconnect_min)
            .with_max_delay(config.reconnect_max)
            .with_jitter()
            .without_max_times();
        Ok(Self {
            endpoint,
            dataplane_id: config.dataplane_id.clone(),
            region: config.region.clone(),
            max_snapshot_bytes: config.max_snapshot_bytes,
            backoff,
            reconnect_max: config.reconnect_max,
            applier,
            shared,
        })
    }

    /// Keeps a stream open until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut delays = self.backoff.build();
        loop {
            let mut established = false;
            let ended = tokio::select! {
                ended = self.session(&mut established) => ended,
                () = stopped(&mut shutdown) => break,
            };
            self.set_connected(false);
            if established {
                delays = self.backoff.build();
            }
            match ended {
                Ok(()) => tracing::warn!(error = %SessionError::Closed, "reconnecting"),
                Err(e) => tracing::warn!(error = %error_chain(&e), "reconnecting"),
            }
            // Without max times the iterator never ends; the fallback is
            // only defensive.
            let delay = delays.next().unwrap_or(self.reconnect_max);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                () = stopped(&mut shutdown) => break,
            }
        }
        self.set_connected(false);
    }

    fn set_connected(&self, up: bool) {
        self.shared
            .metrics
            .control_plane_connected
            .store(up, Ordering::Relaxed);
    }

    /// One stream, from connect to its end. Sets `established` once the
    /// control plane accepted the stream.
    async fn session(&self, established: &mut bool) -> Result<(), SessionError> {
        let channel = self
            .endpoint
            .connect()
            .await
            .map_err(SessionError::Connect)?;
        let mut client = SnapshotServiceClient::new(channel)
            .max_decoding_message_size(self.max_snapshot_bytes)
            .accept_compressed(CompressionEncoding::Gzip);

        let (tx, rx) = mpsc::channel(8);
        let held = self.applier.held();
        let hello = proto::Hello {
            dataplane_id: self.dataplane_id.clone(),
            region: self.region.clone(),
            held_version: (!held.version.is_none()).then(|| held.version.into()),
            held_content_hash: held.content_hash,
            accepts_table_gzip: true,
            chain_kinds: ChainKinds::all().names(),
            accepts_heights: true,
        };
        tx.send(message(Outbound::Hello(hello)))
            .await
            .map_err(|_| SessionError::Closed)?;
        let mut inbound = client.stream(ReceiverStream::new(rx)).await?.into_inner();
        *established = true;
        self.set_connected(true);
        tracing::info!(%held.version, "snapshot stream open");

        while let Some(msg) = inbound.message().await? {
            match msg.message {
                Some(Inbound::Snapshot(snapshot)) => {
                    let reply = self.answer(snapshot).await;
                    tx.send(reply).await.map_err(|_| SessionError::Closed)?;
                }
                Some(Inbound::Heights(heights)) => self.heights(&heights),
                // A message of a newer protocol: nothing to do with it.
                None => {}
            }
        }
        Ok(())
    }

    /// Moves the heights of the networks the table has; others are ignored.
    fn heights(&self, heights: &proto::Heights) {
        let table = self.shared.table.load();
        for h in &heights.networks {
            if let Some(network) = table.network(&h.network) {
                network.heights.update(h.head, h.finalized);
            }
        }
    }

    /// Validates and applies one snapshot; the Ack or Nack to send back.
    async fn answer(&self, mut snapshot: proto::Snapshot) -> proto::DataPlaneMessage {
        let version = Version::from(snapshot.version);
        let nonce = snapshot.nonce.clone();
        let span = tracing::info_span!("snapshot", %version, nonce = %nonce);
        let held = self.applier.held();
        let result = if held.version == version && held.content_hash == snapshot.content_hash {
            // Already serving exactly this; nothing to rebuild or write.
            Ok(version)
        } else {
            let applier = self.applier.clone();
            // The inflated table may be as large as a plain one could be.
            let max_table = self.max_snapshot_bytes;
            // Inflating, hashing, building and fsync are blocking work: keep
            // them off the runtime's worker threads that serve requests.
            tokio::task::spawn_blocking(move || {
                inflate_table(&mut snapshot, max_table).map_err(|e| e.to_string())?;
                applier.apply(&snapshot).map_err(|e| e.to_string())
            })
            .instrument(span.clone())
            .await
            .unwrap_or_else(|e| Err(format!("applying the snapshot failed: {e}")))
        };
        let _enter = span.enter();
        match result {
            Ok(applied) => {
                tracing::info!(%applied, "snapshot applied");
                message(Outbound::Ack(proto::Ack {
                    version: Some(version.into()),
                    nonce,
                }))
            }
            Err(error) => {
                tracing::warn!(%error, "snapshot rejected; the previous one keeps serving");
                message(Outbound::Nack(proto::Nack {
                    version: Some(version.into()),
                    nonce,
                    error,
                }))
            }
        }
    }
}

/// Resolves once `shutdown` turns true (or its sender is gone). The
/// `wait_for` guard is dropped inside, so callers' futures stay `Send`.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

fn message(m: Outbound) -> proto::DataPlaneMessage {
    proto::DataPlaneMessage { message: Some(m) }
}
