//! A scripted data plane: a raw `SnapshotService.Stream` client whose every
//! message the test decides (Hello, Ack, Nack), to check the control plane's
//! side of the protocol (parking after a NACK, no resend on an up-to-date
//! Hello) without the real data plane's own logic in the way.

use std::time::Duration;

use meridian_common::chain::ChainKinds;
use meridian_common::snapshot::Version;
use meridian_proto::v1::snapshot_service_client::SnapshotServiceClient;
use meridian_proto::v1::{
    Ack, ControlPlaneMessage, DataPlaneMessage, Hello, Nack, Snapshot, control_plane_message,
    data_plane_message,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

/// One open snapshot stream, driven by the test.
#[derive(Debug)]
pub struct FakeDataPlane {
    outbound: mpsc::Sender<DataPlaneMessage>,
    inbound: Streaming<ControlPlaneMessage>,
}

impl FakeDataPlane {
    /// Opens a stream to the control plane at `url` and sends `Hello`
    /// naming `held` (version and content hash), or nothing held, and
    /// serving every chain kind, as a data plane of this build does.
    pub async fn connect(
        url: &str,
        dataplane_id: &str,
        region: &str,
        held: Option<(Version, String)>,
    ) -> FakeDataPlane {
        let all = ChainKinds::all().names();
        Self::connect_serving(url, dataplane_id, region, held, &all).await
    }

    /// [`FakeDataPlane::connect`] for a data plane that serves only
    /// `chain_kinds` (empty: one from before Hello listed them).
    pub async fn connect_serving(
        url: &str,
        dataplane_id: &str,
        region: &str,
        held: Option<(Version, String)>,
        chain_kinds: &[String],
    ) -> FakeDataPlane {
        let mut client = SnapshotServiceClient::connect(url.to_owned())
            .await
            .unwrap_or_else(|e| panic!("fake data plane cannot connect to {url}: {e}"));
        let (outbound, rx) = mpsc::channel(16);
        let (held_version, held_content_hash) = match held {
            Some((v, hash)) => (Some(v.into()), hash),
            None => (None, String::new()),
        };
        let hello = DataPlaneMessage {
            message: Some(data_plane_message::Message::Hello(Hello {
                dataplane_id: dataplane_id.to_owned(),
                region: region.to_owned(),
                held_version,
                held_content_hash,
                // Tests read the pushed table as it is: ask for it plain.
                accepts_table_gzip: false,
                accepts_heights: false,
                chain_kinds: chain_kinds.to_vec(),
            })),
        };
        // The channel is fresh and has room: this cannot fail.
        let _ = outbound.send(hello).await;
        let inbound = client
            .stream(ReceiverStream::new(rx))
            .await
            .unwrap_or_else(|e| panic!("SnapshotService.Stream refused: {e}"))
            .into_inner();
        FakeDataPlane { outbound, inbound }
    }

    /// The next snapshot the control plane sends; panics if the stream ends,
    /// fails, or sends nothing within `bound`.
    pub async fn next_snapshot(&mut self, bound: Duration) -> Snapshot {
        let message = tokio::time::timeout(bound, self.inbound.message())
            .await
            .unwrap_or_else(|_| panic!("no snapshot within {bound:?}"))
            .unwrap_or_else(|e| panic!("snapshot stream failed: {e}"))
            .unwrap_or_else(|| panic!("snapshot stream ended"));
        match message.message {
            Some(control_plane_message::Message::Snapshot(s)) => s,
            Some(other) => panic!("expected a snapshot, got {other:?} (Hello refused heights)"),
            None => panic!("a control-plane message without content"),
        }
    }

    /// ACKs `snapshot` (version and nonce echoed).
    pub async fn ack(&self, snapshot: &Snapshot) {
        self.send(data_plane_message::Message::Ack(Ack {
            version: snapshot.version,
            nonce: snapshot.nonce.clone(),
        }))
        .await;
    }

    /// NACKs `snapshot` with `error`.
    pub async fn nack(&self, snapshot: &Snapshot, error: &str) {
        self.send(data_plane_message::Message::Nack(Nack {
            version: snapshot.version,
            nonce: snapshot.nonce.clone(),
            error: error.to_owned(),
        }))
        .await;
    }

    async fn send(&self, message: data_plane_message::Message) {
        self.outbound
            .send(DataPlaneMessage {
                message: Some(message),
            })
            .await
            .unwrap_or_else(|_| panic!("the snapshot stream is closed"));
    }
}

/// The version of a wire snapshot.
pub fn version_of(snapshot: &Snapshot) -> Version {
    snapshot.version.into()
}
