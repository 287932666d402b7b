//! A real `DataPlane` against a scripted control plane and tiny mock nodes.
//!
//! The control plane here is a real tonic `SnapshotService` whose stream the
//! test drives by hand: it sees every Hello/Ack/Nack and pushes whatever
//! snapshot the test wants, valid or not. Mock nodes are real HTTP servers
//! on 127.0.0.1:0 that answer JSON-RPC (echoing the raw id) or fail on
//! command, and count what reaches them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test crate: failing loudly is the point

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use meridian_common::node_client::{NodeClient, NodeClientOptions, node_client};
use meridian_common::proto;
use meridian_common::proto::control_plane_message::Message as Outbound;
use meridian_common::proto::data_plane_message::Message as Inbound;
use meridian_common::proto::snapshot_service_server::{SnapshotService, SnapshotServiceServer};
use meridian_common::snapshot::{Version, content_hash};
use meridian_data_plane::app::DataPlane;
use meridian_data_plane::config::ProxyConfig;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};

mod support;
use support::{eventually, refusing_url};

const WAIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// Scripted control plane

type Push = mpsc::Sender<Result<proto::ControlPlaneMessage, tonic::Status>>;

/// One stream the data plane opened: what it sends, and a handle to push.
struct Session {
    inbound: mpsc::UnboundedReceiver<Inbound>,
    push: Push,
}

impl Session {
    async fn next(&mut self) -> Inbound {
        tokio::time::timeout(WAIT, self.inbound.recv())
            .await
            .expect("the data plane said nothing")
            .expect("the stream closed")
    }

    async fn send(&self, snapshot: proto::Snapshot) {
        let msg = proto::ControlPlaneMessage {
            message: Some(Outbound::Snapshot(snapshot)),
        };
        self.push.send(Ok(msg)).await.expect("stream gone");
    }
}

struct Scripted {
    sessions: mpsc::UnboundedSender<Session>,
}

#[tonic::async_trait]
impl SnapshotService for Scripted {
    type StreamStream = ReceiverStream<Result<proto::ControlPlaneMessage, tonic::Status>>;

    async fn stream(
        &self,
        request: tonic::Request<tonic::Streaming<proto::DataPlaneMessage>>,
    ) -> Result<tonic::Response<Self::StreamStream>, tonic::Status> {
        let mut from_dp = request.into_inner();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(msg)) = from_dp.message().await {
                if let Some(m) = msg.message {
                    let _ = in_tx.send(m);
                }
            }
        });
        let (push, out_rx) = mpsc::channel(8);
        let _ = self.sessions.send(Session {
            inbound: in_rx,
            push,
        });
        Ok(tonic::Response::new(ReceiverStream::new(out_rx)))
    }
}

struct ControlPlane {
    addr: SocketAddr,
    sessions: Mutex<mpsc::UnboundedReceiver<Session>>,
}

impl ControlPlane {
    async fn start() -> ControlPlane {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(SnapshotServiceServer::new(Scripted { sessions: tx }))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        ControlPlane {
            addr,
            sessions: Mutex::new(rx),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn session(&self) -> Session {
        tokio::time::timeout(WAIT, self.sessions.lock().await.recv())
            .await
            .expect("the data plane never connected")
            .expect("server gone")
    }
}

// ---------------------------------------------------------------------------
// Mock nodes: the test kit's, named (each answers with its name).

use meridian_test_kit::evm::{Fault, MockEvmNode as Node};

// ---------------------------------------------------------------------------
// Snapshots

fn upstream(id: &str, url: &str, state: proto::UpstreamState) -> proto::Upstream {
    proto::Upstream {
        id: id.into(),
        url: url.into(),
        region: "eu".into(),
        weight: 1,
        state: state.into(),
        score: 90,
        ..Default::default()
    }
}

fn snapshot(seq: u64, upstreams: Vec<proto::Upstream>, leader: Option<&str>) -> proto::Snapshot {
    let table = proto::RoutingTable {
        networks: vec![proto::Network {
            id: "eth".into(),
            chain: "evm".into(),
            leader_url: leader.unwrap_or_default().into(),
            upstreams,
            policy: Some(proto::NetworkPolicy {
                max_body_bytes: 4096,
                ..Default::default()
            }),
            cache: None,
            hosts: Vec::new(),
        }],
        generated_at_unix_ms: meridian_common::time::unix_ms(),
    };
    proto::Snapshot {
        version: Some(proto::Version { epoch: 1, seq }),
        nonce: format!("n{seq}"),
        content_hash: content_hash(&table),
        table: Some(table),
        table_gzip: Default::default(),
    }
}

fn v(seq: u64) -> Version {
    Version { epoch: 1, seq }
}

// ---------------------------------------------------------------------------
// Client side

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

fn client() -> NodeClient {
    node_client(&NodeClientOptions::default())
}

async fn call(addr: SocketAddr, method: Method, path: &str, body: impl Into<Bytes>) -> Reply {
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .unwrap();
    let response = client().request(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn rpc(dp: &DataPlane, method: &str) -> Reply {
    let body = format!(r#"{{"jsonrpc":"2.0","id":7,"method":"{method}","params":[]}}"#);
    call(dp.listen_addr(), Method::POST, "/eth", body).await
}

async fn admin(dp: &DataPlane, path: &str) -> Reply {
    call(dp.admin_addr(), Method::GET, path, Bytes::new()).await
}

fn ack_of(msg: Inbound) -> proto::Ack {
    match msg {
        Inbound::Ack(ack) => ack,
        other => panic!("expected an Ack, got {other:?}"),
    }
}

fn nack_of(msg: Inbound) -> proto::Nack {
    match msg {
        Inbound::Nack(nack) => nack,
        other => panic!("expected a Nack, got {other:?}"),
    }
}

async fn start_dp(cp_url: String, dir: &std::path::Path) -> DataPlane {
    let mut config = ProxyConfig::new(cp_url, "eu", dir);
    config.dataplane_id = "eu-test".into();
    config.reconnect_max = Duration::from_millis(500);
    // The request path itself is under test: every call must reach a node.
    config.cache_max_bytes = 0;
    DataPlane::start(config).await.unwrap()
}

// ---------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_valid_snapshots_nacks_invalid_ones_and_keeps_serving() {
    let cp = ControlPlane::start().await;
    let a = Node::named("a").await;
    let dir = tempfile::tempdir().unwrap();
    let dp = start_dp(cp.url(), dir.path()).await;
    assert_eq!(
        admin(&dp, "/ready").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(admin(&dp, "/health").await.status, StatusCode::OK);

    let mut s = cp.session().await;
    let Inbound::Hello(hello) = s.next().await else {
        panic!("first message must be Hello")
    };
    assert_eq!(hello.dataplane_id, "eu-test");
    assert_eq!(hello.region, "eu");
    assert_eq!(hello.held_version, None);
    assert_eq!(hello.held_content_hash, "");
    assert!(hello.accepts_table_gzip);
    assert_eq!(
        hello.chain_kinds,
        ["evm", "icon"],
        "every chain kind this build serves (snapshot.proto, rule 9)"
    );

    let good = snapshot(
        1,
        vec![upstream("a", &a.url(), proto::UpstreamState::Healthy)],
        None,
    );
    s.send(good.clone()).await;
    let ack = ack_of(s.next().await);
    assert_eq!(ack.version, Some(proto::Version { epoch: 1, seq: 1 }));
    assert_eq!(ack.nonce, "n1");
    assert_eq!(dp.snapshot_version(), v(1));
    assert_eq!(admin(&dp, "/ready").await.status, StatusCode::OK);

    // It serves: ids come back byte for byte, headers name the upstream.
    let body =
        r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"eth_blockNumber"}"#;
    let r = call(dp.listen_addr(), Method::POST, "/eth", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"result":"a"}"#
    );
    assert_eq!(r.headers["x-handled-by"], "a");
    assert_eq!(r.headers["x-meridian-tries"], "1");
    assert!(!r.headers["x-request-id"].is_empty());

    // Wrong content hash: NACKed with the reason, old table keeps serving.
    let mut bad_hash = snapshot(2, vec![], None);
    bad_hash.content_hash = "00".repeat(32);
    s.send(bad_hash).await;
    let nack = nack_of(s.next().await);
    assert_eq!(nack.version, Some(proto::Version { epoch: 1, seq: 2 }));
    assert_eq!(nack.nonce, "n2");
    assert!(
        nack.error.contains("content hash mismatch"),
        "{}",
        nack.error
    );

    // Duplicate upstream ids (with a correct hash): NACKed too.
    let dup = snapshot(
        3,
        vec![
            upstream("a", &a.url(), proto::UpstreamState::Healthy),
            upstream("a", &a.url(), proto::UpstreamState::Healthy),
        ],
        None,
    );
    s.send(dup).await;
    let nack = nack_of(s.next().await);
    assert!(nack.error.contains("appears twice"), "{}", nack.error);

    assert_eq!(dp.snapshot_version(), v(1));
    assert_eq!(rpc(&dp, "eth_chainId").await.headers["x-handled-by"], "a");

    let metrics = admin(&dp, "/metrics").await.body;
    for line in [
        "meridian_requests_total{network=\"eth\",method=\"eth_blockNumber\",status=\"200\"} 1",
        "meridian_requests_total{network=\"eth\",method=\"eth_chainId\",status=\"200\"} 1",
        "meridian_upstream_latency_seconds_count{network=\"eth\",upstream=\"a\"} 2",
        "meridian_snapshot_version_epoch 1",
        "meridian_snapshot_version_seq 1",
        "meridian_control_plane_connected 1",
        "meridian_snapshots_rejected_total 2",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    assert!(
        metrics.contains("meridian_snapshot_age_seconds "),
        "{metrics}"
    );

    // The table compressed once per version: garbage is NACKed, a real
    // compressed table is applied like a plain one.
    let mut garbage = snapshot(4, vec![], None);
    garbage.table = None;
    garbage.table_gzip = b"not gzip".to_vec();
    s.send(garbage).await;
    let nack = nack_of(s.next().await);
    assert!(nack.error.contains("is not gzip"), "{}", nack.error);
    assert_eq!(dp.snapshot_version(), v(1));
    let mut compressed = snapshot(
        5,
        vec![upstream("a", &a.url(), proto::UpstreamState::Healthy)],
        None,
    );
    let table = compressed.table.take().unwrap();
    compressed.table_gzip = meridian_common::snapshot::gzip_table(&table);
    s.send(compressed).await;
    assert_eq!(
        ack_of(s.next().await).version,
        Some(proto::Version { epoch: 1, seq: 5 })
    );
    assert_eq!(dp.snapshot_version(), v(5));
    assert_eq!(rpc(&dp, "eth_chainId").await.headers["x-handled-by"], "a");
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_with_its_held_version_and_serves_from_disk_without_a_control_plane() {
    let cp = ControlPlane::start().await;
    let a = Node::named("a").await;
    let dir = tempfile::tempdir().unwrap();
    let dp = start_dp(cp.url(), dir.path()).await;
    let mut s = cp.session().await;
    s.next().await; // Hello
    let snap = snapshot(
        4,
        vec![upstream("a", &a.url(), proto::UpstreamState::Healthy)],
        None,
    );
    s.send(snap.clone()).await;
    ack_of(s.next().await);

    // The control plane ends the stream: the data plane comes back with a
    // Hello naming what it holds, and keeps serving meanwhile.
    drop(s);
    let mut s = cp.session().await;
    let Inbound::Hello(hello) = s.next().await else {
        panic!("expected Hello")
    };
    assert_eq!(
        hello.held_version,
        Some(proto::Version { epoch: 1, seq: 4 })
    );
    assert_eq!(hello.held_content_hash, snap.content_hash);
    assert_eq!(rpc(&dp, "eth_call").await.status, StatusCode::OK);
    dp.shutdown().await;

    // Restarted while no control plane is reachable: serves at once from
    // the persisted snapshot.
    let dp = start_dp(refusing_url().await, dir.path()).await;
    assert_eq!(dp.snapshot_version(), v(4));
    let r = rpc(&dp, "eth_call").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers["x-handled-by"], "a");
    assert_eq!(admin(&dp, "/ready").await.status, StatusCode::OK);
    assert!(
        admin(&dp, "/metrics")
            .await
            .body
            .contains("meridian_control_plane_connected 0")
    );
    dp.shutdown().await;

    // A corrupt file is ignored, not fatal.
    std::fs::write(dir.path().join("snapshot.pb"), b"\x0a\xff\xffjunk").unwrap();
    let dp = start_dp(refusing_url().await, dir.path()).await;
    assert_eq!(dp.snapshot_version(), Version::NONE);
    assert_eq!(
        admin(&dp, "/ready").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let r = rpc(&dp, "eth_call").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers["x-rejected-by"], "unavailable");
    dp.shutdown().await;
}

/// A data plane already serving `snapshot` (acked).
async fn serving(
    cp: &ControlPlane,
    dir: &std::path::Path,
    snapshot: proto::Snapshot,
) -> (DataPlane, Session) {
    let dp = start_dp(cp.url(), dir).await;
    let mut s = cp.session().await;
    s.next().await;
    s.send(snapshot).await;
    ack_of(s.next().await);
    (dp, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_never_reaches_an_upstream() {
    let cp = ControlPlane::start().await;
    let a = Node::named("a").await;
    let dir = tempfile::tempdir().unwrap();
    let (dp, _s) = serving(
        &cp,
        dir.path(),
        snapshot(
            1,
            vec![upstream("a", &a.url(), proto::UpstreamState::Healthy)],
            None,
        ),
    )
    .await;
    let addr = dp.listen_addr();

    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"eth_call","params":["{}"]}}"#,
        "x".repeat(5000)
    );
    let r = call(addr, Method::POST, "/eth", big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.headers["x-rejected-by"], "size");
    assert!(r.body.contains("-32005"), "{}", r.body);

    let r = call(addr, Method::POST, "/eth", r#"{"jsonrpc":"2.0","id":1,"#).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.headers["x-rejected-by"], "json");
    assert!(r.body.contains("-32700"), "{}", r.body);
    assert!(r.body.contains(r#""id":null"#), "{}", r.body);

    let r = call(addr, Method::POST, "/eth", r#"{"jsonrpc":"2.0","id":"q"}"#).await;
    assert!(
        r.body.contains("-32600") && r.body.contains(r#""id":"q""#),
        "{}",
        r.body
    );

    let r = call(
        addr,
        Method::POST,
        "/nope",
        r#"{"jsonrpc":"2.0","id":1,"method":"x"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.headers["x-rejected-by"], "network");
    assert!(r.body.contains("unknown network"), "{}", r.body);

    let r = call(addr, Method::GET, "/eth", Bytes::new()).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(!r.headers["x-request-id"].is_empty());

    assert_eq!(a.total_requests(), 0, "bad input reached the upstream");
    let metrics = admin(&dp, "/metrics").await.body;
    assert!(
        metrics.contains("meridian_requests_total{network=\"\",method=\"other\",status=\"404\"} 1"),
        "{metrics}"
    );
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_retried_once_and_writes_are_not() {
    let cp = ControlPlane::start().await;
    let (a, b) = (Node::named("a").await, Node::named("b").await);
    let refused = refusing_url().await;
    let dir = tempfile::tempdir().unwrap();
    let (dp, mut s) = serving(
        &cp,
        dir.path(),
        snapshot(
            1,
            vec![
                upstream("a", &a.url(), proto::UpstreamState::Healthy),
                upstream("dead", &refused, proto::UpstreamState::Healthy),
            ],
            None,
        ),
    )
    .await;

    // Half the reads pick the dead upstream first; none may fail.
    let mut retried = 0;
    for _ in 0..40 {
        let r = rpc(&dp, "eth_getBalance").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.headers["x-handled-by"], "a");
        if r.headers["x-meridian-tries"] == "2" {
            retried += 1;
        }
    }
    assert!(retried > 0, "the dead upstream was never picked");
    // A refused connection never sent the write: it may go elsewhere.
    for _ in 0..10 {
        let r = rpc(&dp, "eth_sendRawTransaction").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }

    // Two upstreams that answer 5xx: a read tries both, a write only one.
    a.set_fault(Fault::Status(500));
    b.set_fault(Fault::Status(500));
    s.send(snapshot(
        2,
        vec![
            upstream("a", &a.url(), proto::UpstreamState::Healthy),
            upstream("b", &b.url(), proto::UpstreamState::Healthy),
        ],
        None,
    ))
    .await;
    ack_of(s.next().await);
    let before = a.total_requests() + b.total_requests();
    let r = rpc(&dp, "eth_call").await;
    // Meridian is the gateway: an upstream's 5xx becomes a 502 of its own.
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert_eq!(r.headers["x-meridian-tries"], "2");
    assert!(r.body.contains(r#""id":7"#), "{}", r.body);
    assert_eq!(a.total_requests() + b.total_requests(), before + 2);

    let before = a.total_requests() + b.total_requests();
    let r = rpc(&dp, "eth_sendRawTransaction").await;
    assert_eq!(r.headers["x-meridian-tries"], "1");
    assert_eq!(
        a.total_requests() + b.total_requests(),
        before + 1,
        "a write was sent twice"
    );
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_serves_when_no_upstream_is_healthy_and_nothing_at_all_is_503() {
    let cp = ControlPlane::start().await;
    let (a, leader) = (Node::named("a").await, Node::named("leader").await);
    let dir = tempfile::tempdir().unwrap();
    let (dp, mut s) = serving(
        &cp,
        dir.path(),
        snapshot(
            1,
            vec![upstream("a", &a.url(), proto::UpstreamState::Lagging)],
            Some(&leader.url()),
        ),
    )
    .await;
    let r = rpc(&dp, "eth_blockNumber").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers["x-handled-by"], "leader");
    assert!(r.body.contains(r#""result":"leader""#));
    assert_eq!(a.total_requests(), 0);

    s.send(snapshot(
        2,
        vec![upstream("a", &a.url(), proto::UpstreamState::Failing)],
        None,
    ))
    .await;
    ack_of(s.next().await);
    eventually("the new snapshot", || async {
        dp.snapshot_version() == v(2)
    })
    .await;
    let r = rpc(&dp, "eth_blockNumber").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers["x-rejected-by"], "unavailable");
    assert!(
        r.body.contains("no upstream for this call and no leader"),
        "{}",
        r.body
    );
    assert!(r.body.contains(r#""id":7"#), "{}", r.body);
    dp.shutdown().await;
}

/// A TCP relay that can go silent without closing anything, like a control
/// plane whose host froze or whose network path died.
async fn freezable_relay(target: SocketAddr) -> (SocketAddr, Arc<AtomicBool>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let frozen = Arc::new(AtomicBool::new(false));
    let flag = frozen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            for (mut from, mut to) in [(cr, sw), (sr, cw)] {
                let flag = flag.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let Ok(n) = from.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        if flag.load(Ordering::SeqCst) {
                            // Swallow everything, keep both sockets open.
                            std::future::pending::<()>().await;
                        }
                        if to.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
    });
    (addr, frozen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_control_plane_is_noticed_by_keepalive_and_traffic_goes_on() {
    let cp = ControlPlane::start().await;
    let a = Node::named("a").await;
    let (relay, frozen) = freezable_relay(cp.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = ProxyConfig::new(format!("http://{relay}"), "eu", dir.path());
    config.control_keepalive_interval = Duration::from_millis(300);
    config.control_keepalive_timeout = Duration::from_millis(600);
    let dp = DataPlane::start(config).await.unwrap();
    let mut s = cp.session().await;
    s.next().await;
    s.send(snapshot(
        1,
        vec![upstream("a", &a.url(), proto::UpstreamState::Healthy)],
        None,
    ))
    .await;
    ack_of(s.next().await);

    let connected = |dp: &DataPlane| {
        dp.shared()
            .metrics
            .control_plane_connected
            .load(Ordering::SeqCst)
    };
    assert!(connected(&dp));
    frozen.store(true, Ordering::SeqCst);
    // No byte and no FIN arrives any more: only keepalive can tell.
    eventually("the dead stream to be noticed", || async {
        !connected(&dp)
    })
    .await;
    let r = rpc(&dp, "eth_call").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    dp.shutdown().await;
}
