//! Test support for the request-path tests: a scripted control plane that
//! pushes one snapshot, mock nodes with scripted faults that record what
//! reaches them, and a client.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
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
use tokio::sync::{Notify, mpsc};
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
// Mock nodes with scripted faults

/// How a mock node answers.
#[derive(Debug, Clone)]
pub enum Fault {
    /// A JSON-RPC answer to every call, `"result": "<name>"`.
    None,
    /// Answer after this long.
    Slow(Duration),
    /// This HTTP status with an HTML page.
    Status(u16),
    /// Headers and half the body, then the connection breaks.
    ResetMidBody,
    /// HTTP 200 with JSON cut short.
    Truncated,
    /// HTTP 200, a valid answer to another id.
    WrongId,
    /// HTTP 200 with an HTML page.
    Html,
    /// Never answers.
    Hang,
    /// Waits until [`Node::release`], then answers.
    Hold,
    /// A JSON-RPC error answer: the node already has the transaction.
    AlreadyKnown,
    /// Good answers, but every id written back as a float (`0` → `0.0`),
    /// the way nodes that read ids into a double do (ganache loses the
    /// precision of big numbers this way).
    LossyIds,
}

#[derive(Clone)]
pub struct Node {
    pub name: &'static str,
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    /// Every call that reached the node, in arrival order:
    /// `method:id:params` as the node read them (`-` for an absent id or
    /// params). Ids are Meridian's, so tests tell calls apart by params.
    calls: Arc<Mutex<Vec<String>>>,
    /// Applied to each request in turn; when empty, `default` applies.
    script: Arc<Mutex<VecDeque<Fault>>>,
    default: Arc<Mutex<Fault>>,
    released: Arc<Notify>,
    held: Arc<AtomicUsize>,
}

impl Node {
    pub async fn start(name: &'static str) -> Node {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node = Node {
            name,
            addr: listener.local_addr().unwrap(),
            hits: Arc::default(),
            calls: Arc::default(),
            script: Arc::default(),
            default: Arc::new(Mutex::new(Fault::None)),
            released: Arc::default(),
            held: Arc::default(),
        };
        let n = node.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let n = n.clone();
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let n = n.clone();
                    async move { Ok::<_, Infallible>(n.answer(req).await) }
                });
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        node
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// Every request answers like this from now on.
    pub fn set(&self, fault: Fault) {
        *self.default.lock().unwrap() = fault;
    }

    /// The next requests answer like these, in order.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.script.lock().unwrap().extend(faults);
    }

    /// Requests currently held by [`Fault::Hold`].
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Lets every held request answer.
    pub fn release(&self) {
        self.set(Fault::None);
        self.released.notify_waiters();
    }

    async fn answer(&self, req: Request<hyper::body::Incoming>) -> Response<hyper_util_body::Body> {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        self.hits.fetch_add(1, Ordering::SeqCst);
        let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let calls: Vec<&Value> = match &parsed {
            Value::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        {
            let mut log = self.calls.lock().unwrap();
            let shown = |v: Option<&Value>| v.map_or_else(|| "-".to_owned(), Value::to_string);
            for c in &calls {
                log.push(format!(
                    "{}:{}:{}",
                    c["method"].as_str().unwrap_or("?"),
                    shown(c.get("id")),
                    shown(c.get("params"))
                ));
            }
        }
        let fault = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| self.default.lock().unwrap().clone());
        let text = |status: u16, body: String| {
            let mut r = Response::new(full(body));
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            r
        };
        let spec_result = |c: &Value| -> Result<Value, ()> {
            let method = c["method"].as_str().unwrap_or_default();
            let p = &c["params"];
            let n = |v: &Value| v.as_i64().unwrap_or(0);
            Ok(match method {
                "subtract" if p.is_array() => (n(&p[0]) - n(&p[1])).into(),
                "subtract" => (n(&p["minuend"]) - n(&p["subtrahend"])).into(),
                "sum" => p
                    .as_array()
                    .map(|a| a.iter().map(n).sum::<i64>())
                    .unwrap_or(0)
                    .into(),
                "get_data" => serde_json::json!(["hello", 5]),
                m if ["eth_", "net_", "web3_", "debug_", "admin_"]
                    .iter()
                    .any(|p| m.starts_with(p)) =>
                {
                    self.name.into()
                }
                _ => return Err(()),
            })
        };
        let lossy = matches!(fault, Fault::LossyIds);
        let answer_of = |c: &Value| -> String {
            // Ids are echoed as the node parsed them (serde_json keeps big
            // numbers as f64 without arbitrary_precision, like many nodes):
            // Meridian must still give the client its own bytes.
            let id = match c["id"].as_f64() {
                Some(f) if lossy => format!("{f:?}"),
                _ => c["id"].to_string(),
            };
            match spec_result(c) {
                Ok(result) => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#),
                Err(()) => format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32601,"message":"Method not found"}}}}"#
                ),
            }
        };
        let good = || -> String {
            match &parsed {
                Value::Array(a) => {
                    let answers: Vec<String> = a
                        .iter()
                        .filter(|c| c.get("id").is_some())
                        .map(answer_of)
                        .collect();
                    format!("[{}]", answers.join(","))
                }
                c if c.get("id").is_some() => answer_of(c),
                _ => String::new(),
            }
        };
        match fault {
            Fault::None | Fault::LossyIds => text(200, good()),
            Fault::Slow(d) => {
                tokio::time::sleep(d).await;
                text(200, good())
            }
            Fault::Status(s) => text(s, "<html><body>nope</body></html>".into()),
            Fault::Html => text(200, "<html><body>maintenance</body></html>".into()),
            Fault::Truncated => {
                let g = good();
                text(200, g[..g.len() / 2].to_owned())
            }
            Fault::WrongId => text(
                200,
                r#"{"jsonrpc":"2.0","id":"someone-else","result":"x"}"#.into(),
            ),
            Fault::AlreadyKnown => {
                let id = &calls[0]["id"];
                text(
                    200,
                    format!(
                        r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32000,"message":"already known"}}}}"#
                    ),
                )
            }
            Fault::ResetMidBody => {
                let g = good();
                let half = Bytes::from(g[..g.len() / 2].to_owned());
                let chunks: Vec<Result<Frame<Bytes>, std::io::Error>> =
                    vec![Ok(Frame::data(half)), Err(std::io::Error::other("reset"))];
                let mut r = Response::new(StreamBody::new(stream::iter(chunks)).boxed());
                r.headers_mut().insert("content-length", (g.len()).into());
                r
            }
            Fault::Hang => std::future::pending().await,
            Fault::Hold => {
                // Counted while held, and no longer once answered or
                // dropped (the client of this node went away).
                struct Held(Arc<AtomicUsize>);
                impl Drop for Held {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                let notified = self.released.notified();
                self.held.fetch_add(1, Ordering::SeqCst);
                let _held = Held(self.held.clone());
                notified.await;
                text(200, good())
            }
        }
    }
}

mod hyper_util_body {
    pub type Body = http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error>;
}

fn full(s: String) -> hyper_util_body::Body {
    Full::new(Bytes::from(s))
        .map_err(|never| match never {})
        .boxed()
}

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
