//! Test support: a control-plane fixture, a data-plane stream client and
//! polling helpers; the mock EVM node is the test kit's.

#![allow(dead_code)]
// Test-only helpers: a failure here is a test failure, so panicking is right.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use meridian_common::proto;
use meridian_common::proto::admin_service_client::AdminServiceClient;
use meridian_common::proto::snapshot_service_client::SnapshotServiceClient;
use meridian_control_plane::app::ControlPlane;
use meridian_control_plane::config::ControlConfig;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

// Not every test binary uses every name.
#[allow(unused_imports)]
pub use meridian_test_kit::evm::{FINALIZED_PROBE, Fault, MockEvmNode};

/// A control.toml for tests: port 0, fast probes.
pub fn config_text(
    data_dir: &Path,
    leader: Option<&MockEvmNode>,
    upstreams: &[(&str, &MockEvmNode, &str)],
) -> String {
    let mut text = format!(
        "[server]\ngrpc_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n\n\
         [[networks]]\nid = \"eth-local\"\nchain = \"evm\"\nprobe_interval_ms = 50\nmax_lag_blocks = 10\n\
         healthy_after = 3\nunhealthy_after = 2\n",
        data_dir.display().to_string()
    );
    if let Some(l) = leader {
        text.push_str(&format!("leader = \"{}\"\n", l.url()));
    }
    for (id, node, region) in upstreams {
        text.push_str(&format!(
            "\n[[networks.upstreams]]\nid = \"{id}\"\nurl = \"{}\"\nregion = \"{region}\"\n",
            node.url()
        ));
    }
    text
}

pub fn config(text: &str) -> ControlConfig {
    ControlConfig::from_toml_str(text, Path::new("test.toml")).unwrap()
}

pub async fn admin(plane: &ControlPlane) -> AdminServiceClient<Channel> {
    AdminServiceClient::connect(format!("http://{}", plane.grpc_addr()))
        .await
        .unwrap()
}

/// The data plane `id` as `ListDataPlanes` shows it now, if listed.
pub async fn data_plane_status(
    admin: &AdminServiceClient<Channel>,
    id: &str,
) -> Option<meridian_proto::v1::DataPlaneStatus> {
    admin
        .clone()
        .list_data_planes(meridian_proto::v1::ListDataPlanesRequest {})
        .await
        .unwrap()
        .into_inner()
        .dataplanes
        .into_iter()
        .find(|d| d.dataplane_id == id)
}

/// Polls `check` every 20 ms until it returns `Some`, for at most 15 s.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The current snapshot through the admin API.
pub async fn snapshot(admin: &mut AdminServiceClient<Channel>) -> proto::Snapshot {
    admin
        .get_snapshot(proto::GetSnapshotRequest {})
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap()
}

/// Upstream `id` in a snapshot, if present.
pub fn upstream_of<'a>(s: &'a proto::Snapshot, id: &str) -> Option<&'a proto::Upstream> {
    s.table
        .as_ref()?
        .networks
        .iter()
        .flat_map(|n| &n.upstreams)
        .find(|u| u.id == id)
}

/// State of upstream `id` in a snapshot, if present.
pub fn state_of(s: &proto::Snapshot, id: &str) -> Option<proto::UpstreamState> {
    upstream_of(s, id).map(proto::Upstream::state)
}

/// The first published snapshot in which every upstream in `states` has
/// its state (polled through the admin API, as [`eventually`]).
pub async fn snapshot_with(
    admin: &AdminServiceClient<Channel>,
    states: &[(&str, proto::UpstreamState)],
) -> proto::Snapshot {
    let what = states
        .iter()
        .map(|(id, state)| format!("{id} {}", state.as_str_name()))
        .collect::<Vec<_>>()
        .join(", ");
    eventually(&what, || {
        let mut admin = admin.clone();
        async move {
            let s = snapshot(&mut admin).await;
            states
                .iter()
                .all(|(id, state)| state_of(&s, id) == Some(*state))
                .then_some(s)
        }
    })
    .await
}

/// A scripted data plane: one real stream.
pub struct Stream {
    pub tx: mpsc::Sender<proto::DataPlaneMessage>,
    pub rx: tonic::Streaming<proto::ControlPlaneMessage>,
}

impl Stream {
    /// A stream whose Hello does not accept `table_gzip` (plain tables).
    pub async fn open(
        plane: &ControlPlane,
        id: &str,
        held: Option<(proto::Version, String)>,
    ) -> Stream {
        Self::open_with(plane, id, held, false).await
    }

    pub async fn open_with(
        plane: &ControlPlane,
        id: &str,
        held: Option<(proto::Version, String)>,
        accepts_table_gzip: bool,
    ) -> Stream {
        let (held_version, held_content_hash) =
            held.map_or((None, String::new()), |(v, h)| (Some(v), h));
        Self::open_hello(
            plane,
            proto::Hello {
                dataplane_id: id.into(),
                region: "eu".into(),
                held_version,
                held_content_hash,
                accepts_table_gzip,
                accepts_heights: false,
                // A data plane from before chain kinds were listed: EVM only.
                chain_kinds: Vec::new(),
            },
        )
        .await
    }

    /// A stream of data plane `id` (region eu, holding nothing) whose Hello
    /// accepts Heights.
    pub async fn open_heights(plane: &ControlPlane, id: &str) -> Stream {
        Self::open_hello(
            plane,
            proto::Hello {
                dataplane_id: id.into(),
                region: "eu".into(),
                accepts_heights: true,
                ..Default::default()
            },
        )
        .await
    }

    /// A stream opened with `hello`.
    pub async fn open_hello(plane: &ControlPlane, hello: proto::Hello) -> Stream {
        let mut client = SnapshotServiceClient::connect(format!("http://{}", plane.grpc_addr()))
            .await
            .unwrap()
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        let (tx, rx) = mpsc::channel(8);
        tx.send(proto::DataPlaneMessage {
            message: Some(proto::data_plane_message::Message::Hello(hello)),
        })
        .await
        .unwrap();
        let rx = client
            .stream(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        Stream { tx, rx }
    }

    /// The next message (bounded wait).
    pub async fn next_message(&mut self) -> proto::control_plane_message::Message {
        tokio::time::timeout(Duration::from_secs(15), self.rx.message())
            .await
            .expect("no message within 15 s")
            .unwrap()
            .expect("stream ended")
            .message
            .expect("empty message")
    }

    /// The next snapshot pushed (bounded wait); anything else is a failure.
    pub async fn next(&mut self) -> proto::Snapshot {
        match self.next_message().await {
            proto::control_plane_message::Message::Snapshot(s) => s,
            other => panic!("expected a snapshot, got {other:?}"),
        }
    }

    pub async fn ack(&self, s: &proto::Snapshot) {
        self.send(proto::data_plane_message::Message::Ack(proto::Ack {
            version: s.version,
            nonce: s.nonce.clone(),
        }))
        .await;
    }

    pub async fn nack(&self, s: &proto::Snapshot, error: &str) {
        self.send(proto::data_plane_message::Message::Nack(proto::Nack {
            version: s.version,
            nonce: s.nonce.clone(),
            error: error.into(),
        }))
        .await;
    }

    async fn send(&self, m: proto::data_plane_message::Message) {
        self.tx
            .send(proto::DataPlaneMessage { message: Some(m) })
            .await
            .unwrap();
    }
}

/// GET `path` on `addr`; status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
