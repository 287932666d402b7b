//! Test support for the request-path tests: a scripted control plane that
//! pushes one snapshot, the test kit's mock nodes (named, with scripted
//! faults, recording what reaches them), and a client.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use meridian_common::node_client::{NodeClientOptions, node_client};
use meridian_common::proto;
use meridian_common::proto::control_plane_message::Message as Outbound;
use meridian_common::proto::data_plane_message::Message as Inbound;
use meridian_common::proto::snapshot_service_server::{SnapshotService, SnapshotServiceServer};
use meridian_common::snapshot::content_hash;
use meridian_data_plane::app::DataPlane;
use meridian_data_plane::config::ProxyConfig;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};

pub const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// A control plane that serves one snapshot per stream

struct OneSnapshot {
    snapshot: proto::Snapshot,
}

#[tonic::async_trait]
impl SnapshotService for OneSnapshot {
    type StreamStream = ReceiverStream<Result<proto::ControlPlaneMessage, tonic::Status>>;

    async fn stream(
        &self,
        request: tonic::Request<tonic::Streaming<proto::DataPlaneMessage>>,
    ) -> Result<tonic::Response<Self::StreamStream>, tonic::Status> {
        let mut from_dp = request.into_inner();
        let (push, out_rx) = mpsc::channel(4);
        let snapshot = self.snapshot.clone();
        tokio::spawn(async move {
            let mut sent = false;
            while let Ok(Some(msg)) = from_dp.message().await {
                if let Some(Inbound::Hello(_)) = msg.message
                    && !sent
                {
                    sent = true;
                    let msg = proto::ControlPlaneMessage {
                        message: Some(Outbound::Snapshot(snapshot.clone())),
                    };
                    let _ = push.send(Ok(msg)).await;
                }
            }
        });
        Ok(tonic::Response::new(ReceiverStream::new(out_rx)))
    }
}

/// A data plane serving `snapshot` (waits until it is applied).
pub async fn data_plane(
    snapshot: proto::Snapshot,
    tweak: impl FnOnce(&mut ProxyConfig),
) -> (DataPlane, tempfile::TempDir) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(SnapshotServiceServer::new(OneSnapshot { snapshot }))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut config = ProxyConfig::new(format!("http://{addr}"), "eu", dir.path());
    config.dataplane_id = "eu-test".into();
    // These suites test the request path itself: every call must reach a
    // node. The cache's own tests (cache.rs) turn it back on.
    config.cache_max_bytes = 0;
    tweak(&mut config);
    let dp = DataPlane::start(config).await.unwrap();
    eventually("the snapshot to be applied", || async {
        !dp.snapshot_version().is_none()
    })
    .await;
    (dp, dir)
}

pub fn upstream(id: &str, url: &str) -> proto::Upstream {
    proto::Upstream {
        id: id.into(),
        url: url.into(),
        region: "eu".into(),
        weight: 1,
        state: proto::UpstreamState::Healthy.into(),
        score: 90,
        head_height: 1_000,
        ..Default::default()
    }
}

pub fn with_roles(mut u: proto::Upstream, roles: &[proto::Role]) -> proto::Upstream {
    u.roles = roles.iter().map(|r| (*r).into()).collect();
    u
}

pub fn snapshot(
    upstreams: Vec<proto::Upstream>,
    leader: Option<&str>,
    policy: proto::NetworkPolicy,
) -> proto::Snapshot {
    let table = proto::RoutingTable {
        networks: vec![proto::Network {
            id: "eth".into(),
            chain: "evm".into(),
            leader_url: leader.unwrap_or_default().into(),
            upstreams,
            policy: Some(policy),
            cache: None,
            hosts: Vec::new(),
        }],
        generated_at_unix_ms: meridian_common::time::unix_ms(),
    };
    proto::Snapshot {
        version: Some(proto::Version { epoch: 1, seq: 1 }),
        nonce: "n1".into(),
        content_hash: content_hash(&table),
        table: Some(table),
        table_gzip: Default::default(),
    }
}

// ---------------------------------------------------------------------------
// Mock nodes: the test kit's, named (each answers its common calls with its
// name, so a test sees which upstream answered), with scripted faults.

// Not every test binary uses every name.
#[allow(unused_imports)]
pub use meridian_test_kit::evm::{ALREADY_KNOWN, Fault, MockEvmNode as Node};

/// A URL whose port refuses connections.
pub async fn refusing_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

// ---------------------------------------------------------------------------
// Client side

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

pub async fn post(dp: &DataPlane, path: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{}{path}", dp.listen_addr()))
        .header("content-type", "application/json");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap();
    let response = node_client(&NodeClientOptions::default())
        .request(request)
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub async fn rpc(dp: &DataPlane, method: &str) -> Reply {
    let body = format!(r#"{{"jsonrpc":"2.0","id":7,"method":"{method}","params":[]}}"#);
    post(dp, "/eth", &body, &[]).await
}

pub async fn metrics(dp: &DataPlane) -> String {
    let request = Request::builder()
        .uri(format!("http://{}/metrics", dp.admin_addr()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = node_client(&NodeClientOptions::default())
        .request(request)
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// The value of the metric line starting with `prefix`; `None` when no
/// line does.
pub async fn metric_if_present(dp: &DataPlane, prefix: &str) -> Option<f64> {
    let text = metrics(dp).await;
    let line = text.lines().find(|l| l.starts_with(prefix))?;
    let value = line.rsplit(' ').next()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|e| panic!("{line}: the value is no number: {e}")),
    )
}

/// The value of the metric line starting with `prefix`. A series that is
/// absent fails the test: a drifted name or label must not read as 0.
pub async fn metric(dp: &DataPlane, prefix: &str) -> f64 {
    match metric_if_present(dp, prefix).await {
        Some(v) => v,
        None => panic!("no series {prefix} in\n{}", metrics(dp).await),
    }
}

/// How long a test watches for copies that must never come (a negative
/// needs a bound; copies are sent within milliseconds when they are).
pub const STRAY_COPY_WAIT: Duration = Duration::from_millis(300);

/// Checks that `check` holds at every poll for `bound`.
pub async fn holds_for<F, Fut>(what: &str, bound: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + bound;
    while tokio::time::Instant::now() < deadline {
        assert!(check().await, "broken: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(check().await, "broken: {what}");
}

/// Polls `check` until it holds, failing after a generous bound.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
