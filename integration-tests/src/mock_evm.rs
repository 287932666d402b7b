//! An in-process mock EVM node whose height, chain id and faults tests control.
//!
//! It speaks just enough Ethereum JSON-RPC over HTTP/1.1 for Meridian's probes
//! and request path: `eth_blockNumber`, `eth_chainId`, `net_version`,
//! `eth_getBalance`, `eth_sendRawTransaction` and `web3_clientVersion`;
//! anything else is answered with -32601. Single and batch requests are
//! supported and request ids are echoed byte for byte (`RawValue`), so tests
//! can check that the proxy does not rewrite them.
//!
//! Every call is counted per method, so a test can prove how many probes a
//! node saw (hysteresis) or that a refused client request never reached it.
//! [`MockEvmNode::kill`] closes the listener *and* every open connection, the
//! way a crashed node looks to a pooled client; [`MockEvmNode::restart`]
//! listens again on the same port.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::{JoinHandle, JoinSet};

/// The balance every account has on a mock node (1 ether, in wei).
pub const MOCK_BALANCE: &str = "0xde0b6b3a7640000";

/// The method probes use to read the head height.
const HEAD_METHOD: &str = "eth_blockNumber";

/// What `requests` counts `eth_getBlockByNumber("finalized")` under: the
/// control plane's finality probe, apart from clients' block reads.
pub const FINALIZED_PROBE: &str = "eth_getBlockByNumber(finalized)";

/// The method name counted for bodies that are not JSON-RPC at all.
pub const INVALID_BODY: &str = "<invalid>";

/// A fault the mock node injects into every HTTP request until cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Answer normally.
    #[default]
    None,
    /// Answer HTTP 500 with a plain-text body.
    Http500,
    /// Never answer (the connection stays open).
    Hang,
    /// Answer HTTP 200 with a body that is not JSON.
    Malformed,
    /// Answer normally after this delay.
    Delay(Duration),
}

/// Why a mock node could not start or restart.
#[derive(Debug, thiserror::Error)]
#[error("mock EVM node cannot listen on {addr}: {source}")]
pub struct MockStartError {
    /// The address that could not be bound.
    pub addr: SocketAddr,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// State shared between the node handle and its connection tasks.
#[derive(Debug)]
struct Shared {
    height: AtomicU64,
    chain_id: AtomicU64,
    /// Answered to `eth_getBlockByNumber("finalized")`; 0: `null`.
    finalized: AtomicU64,
    /// Block of every transaction's receipt; 0: not mined (`null`).
    receipt_block: AtomicU64,
    /// Part of every block hash: a new fork replaces every block.
    fork: AtomicU64,
    tx_count: AtomicU64,
    total: AtomicU64,
    fault: Mutex<Fault>,
    by_method: Mutex<HashMap<String, u64>>,
}

impl Shared {
    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, method: &str) {
        let mut map = self
            .by_method
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *map.entry(method.to_owned()).or_default() += 1;
    }

    /// Counts one `eth_blockNumber` and reads the height under the same lock
    /// as [`MockEvmNode::set_height_at`], so a test knows exactly which
    /// probes saw which height.
    fn count_head_probe(&self) -> u64 {
        let mut map = self
            .by_method
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *map.entry(HEAD_METHOD.to_owned()).or_default() += 1;
        self.height.load(Ordering::SeqCst)
    }
}

/// Moves a node's head from another task (e.g. a ticker) without owning the node.
#[derive(Debug, Clone)]
pub struct HeightHandle(Arc<Shared>);

impl HeightHandle {
    /// Moves the head `n` blocks forward.
    pub fn advance(&self, n: u64) {
        self.0.height.fetch_add(n, Ordering::SeqCst);
    }
}

/// A running (or killed) mock EVM node. Dropping it stops the server.
#[derive(Debug)]
pub struct MockEvmNode {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// The accept loop; it owns every connection task, so aborting it closes them all.
    server: Mutex<Option<JoinHandle<()>>>,
}

impl MockEvmNode {
    /// Starts a node at height 100 on chain id 1337, listening on 127.0.0.1:0.
    pub async fn start() -> MockEvmNode {
        Self::start_with(100, 1337).await
    }

    /// Starts a node at `height` on `chain_id`, listening on 127.0.0.1:0.
    ///
    /// # Panics
    /// If no port can be bound (the test cannot go on without its node).
    pub async fn start_with(height: u64, chain_id: u64) -> MockEvmNode {
        Self::try_start_on(SocketAddr::from(([127, 0, 0, 1], 0)), height, chain_id)
            .await
            // Test support: a node that cannot bind fails the test at once.
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a node on `addr` (port 0 allowed).
    pub async fn try_start_on(
        addr: SocketAddr,
        height: u64,
        chain_id: u64,
    ) -> Result<MockEvmNode, MockStartError> {
        let shared = Arc::new(Shared {
            height: AtomicU64::new(height),
            chain_id: AtomicU64::new(chain_id),
            finalized: AtomicU64::new(0),
            receipt_block: AtomicU64::new(0),
            fork: AtomicU64::new(0),
            tx_count: AtomicU64::new(0),
            total: AtomicU64::new(0),
            fault: Mutex::new(Fault::None),
            by_method: Mutex::new(HashMap::new()),
        });
        let listener = bind(addr)?;
        let addr = listener
            .local_addr()
            .map_err(|source| MockStartError { addr, source })?;
        let server = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(MockEvmNode {
            addr,
            shared,
            server: Mutex::new(Some(server)),
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address (kept across [`MockEvmNode::restart`]).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The height `eth_blockNumber` reports.
    pub fn height(&self) -> u64 {
        self.shared.height.load(Ordering::SeqCst)
    }

    /// Sets the height `eth_blockNumber` reports.
    pub fn set_height(&self, height: u64) {
        self.shared.height.store(height, Ordering::SeqCst);
    }

    /// Sets the height and returns how many `eth_blockNumber` calls arrived
    /// before the change, atomically: every call counted after the returned
    /// number sees the new height, every call before it saw an older one.
    /// This lets a test count exactly the probes that saw a condition.
    pub fn set_height_at(&self, height: u64) -> u64 {
        let map = self
            .shared
            .by_method
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.shared.height.store(height, Ordering::SeqCst);
        map.get(HEAD_METHOD).copied().unwrap_or(0)
    }

    /// A handle that moves this node's head from another task.
    pub fn height_handle(&self) -> HeightHandle {
        HeightHandle(self.shared.clone())
    }

    /// Moves the head `n` blocks forward.
    pub fn advance(&self, n: u64) {
        self.shared.height.fetch_add(n, Ordering::SeqCst);
    }

    /// Sets the id `eth_chainId` (and `net_version`) report.
    /// The block `eth_getBlockByNumber("finalized")` answers (0: `null`,
    /// as a chain without a finalized block yet).
    pub fn set_finalized(&self, height: u64) {
        self.shared.finalized.store(height, Ordering::SeqCst);
    }

    /// Every receipt is in `block` from now on (0: not mined, `null`).
    pub fn set_receipt_block(&self, block: u64) {
        self.shared.receipt_block.store(block, Ordering::SeqCst);
    }

    /// Replaces every block (their hashes change): a reorg.
    pub fn fork(&self) {
        self.shared.fork.fetch_add(1, Ordering::SeqCst);
    }

    pub fn set_chain_id(&self, chain_id: u64) {
        self.shared.chain_id.store(chain_id, Ordering::SeqCst);
    }

    /// Injects `fault` into every request from now on ([`Fault::None`] clears it).
    pub fn set_fault(&self, fault: Fault) {
        *self
            .shared
            .fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = fault;
    }

    /// JSON-RPC calls of `method` received so far (a batch counts each call).
    pub fn requests(&self, method: &str) -> u64 {
        self.shared
            .by_method
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(method)
            .copied()
            .unwrap_or(0)
    }

    /// JSON-RPC calls of any method *not* in `methods` (bodies that were not
    /// JSON-RPC count as [`INVALID_BODY`]). With the probe methods excluded,
    /// this is "client traffic that reached this node".
    pub fn requests_except(&self, methods: &[&str]) -> u64 {
        self.shared
            .by_method
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(m, _)| !methods.contains(&m.as_str()))
            .map(|(_, n)| n)
            .sum()
    }

    /// Client traffic: every call except the probes' `eth_blockNumber`,
    /// `eth_chainId` and `eth_getBlockByNumber("finalized")`.
    pub fn client_requests(&self) -> u64 {
        self.requests_except(&["eth_blockNumber", "eth_chainId", FINALIZED_PROBE])
    }

    /// HTTP requests received so far (whatever their body).
    pub fn total_requests(&self) -> u64 {
        self.shared.total.load(Ordering::SeqCst)
    }

    /// Stops listening and drops every open connection, so clients see
    /// connection refused / reset. Counters and settings are kept.
    pub fn kill(&self) {
        let server = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(server) = server {
            // Aborting drops the listener and the JoinSet of connections;
            // dropping a JoinSet aborts its tasks, which closes their sockets.
            server.abort();
        }
    }

    /// Whether the node is currently listening.
    pub fn is_running(&self) -> bool {
        self.server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Listens again on the same port (after [`MockEvmNode::kill`]).
    /// Retries for a while: the port is briefly unavailable after a kill.
    pub async fn restart(&self) -> Result<(), MockStartError> {
        self.kill();
        let mut last = None;
        for _ in 0..100 {
            match bind(self.addr) {
                Ok(listener) => {
                    let server = tokio::spawn(accept_loop(listener, self.shared.clone()));
                    *self.server.lock().unwrap_or_else(PoisonError::into_inner) = Some(server);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(last.unwrap_or(MockStartError {
            addr: self.addr,
            source: std::io::Error::other("restart gave up"),
        }))
    }
}

impl Drop for MockEvmNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Binds with SO_REUSEADDR so a restart can take the same port again at once.
fn bind(addr: SocketAddr) -> Result<TcpListener, MockStartError> {
    let err = |source| MockStartError { addr, source };
    let socket = TcpSocket::new_v4().map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(1024).map_err(err)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(req, shared.clone()));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            // Reap finished connections so the set does not grow forever.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One JSON-RPC call, as far as the mock needs to read it.
#[derive(Deserialize)]
struct Call<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(default)]
    method: Option<String>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    shared.total.fetch_add(1, Ordering::SeqCst);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(plain(StatusCode::BAD_REQUEST, "unreadable body")),
    };
    let answer = answer(&body, &shared);
    match shared.fault() {
        Fault::None => {}
        Fault::Http500 => return Ok(plain(StatusCode::INTERNAL_SERVER_ERROR, "mock fault")),
        Fault::Hang => std::future::pending::<()>().await,
        Fault::Malformed => return Ok(json(StatusCode::OK, b"{\"jsonrpc\": oops".to_vec())),
        Fault::Delay(d) => tokio::time::sleep(d).await,
    }
    Ok(match answer {
        Some(body) => json(StatusCode::OK, body),
        None => plain(StatusCode::BAD_REQUEST, "not JSON-RPC"),
    })
}

/// Counts the calls in `body` and builds the answer; `None` if the body is
/// not a JSON-RPC call or batch.
fn answer(body: &[u8], shared: &Shared) -> Option<Vec<u8>> {
    let trimmed = body.trim_ascii_start();
    if trimmed.first() == Some(&b'[') {
        let Ok(calls) = serde_json::from_slice::<Vec<Call<'_>>>(body) else {
            shared.count(INVALID_BODY);
            return None;
        };
        let answers: Vec<String> = calls.iter().map(|c| answer_call(c, shared)).collect();
        Some(format!("[{}]", answers.join(",")).into_bytes())
    } else {
        let Ok(call) = serde_json::from_slice::<Call<'_>>(body) else {
            shared.count(INVALID_BODY);
            return None;
        };
        Some(answer_call(&call, shared).into_bytes())
    }
}

fn answer_call(call: &Call<'_>, shared: &Shared) -> String {
    let id = call.id.map_or("null", RawValue::get);
    let method = call.method.as_deref().unwrap_or("");
    if method == HEAD_METHOD {
        let height = shared.count_head_probe();
        return format!(
            r#"{{"jsonrpc":"2.0","id":{id},"result":{}}}"#,
            quantity(height)
        );
    }
    if method == "eth_getBlockByNumber"
        && call
            .params
            .is_some_and(|p| p.get().replace(' ', "").starts_with(r#"["finalized""#))
    {
        shared.count(FINALIZED_PROBE);
        let result = match shared.finalized.load(Ordering::SeqCst) {
            0 => "null".to_owned(),
            n => format!(r#"{{"number":{},"hash":"0x{n:064x}"}}"#, quantity(n)),
        };
        return format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#);
    }
    shared.count(if method.is_empty() {
        INVALID_BODY
    } else {
        method
    });
    let result = match method {
        "eth_gasPrice" => quantity(1_000_000_000 + shared.height.load(Ordering::SeqCst)),
        "eth_getBlockByNumber" => {
            let number = call
                .params
                .and_then(|p| serde_json::from_str::<(String, bool)>(p.get()).ok())
                .and_then(|(n, _)| u64::from_str_radix(n.trim_start_matches("0x"), 16).ok());
            match number {
                Some(n) if n <= shared.height.load(Ordering::SeqCst) => format!(
                    r#"{{"number":{},"hash":"0x{:032x}{n:032x}","transactions":[]}}"#,
                    quantity(n),
                    shared.fork.load(Ordering::SeqCst)
                ),
                _ => "null".to_owned(),
            }
        }
        "eth_getTransactionReceipt" => match shared.receipt_block.load(Ordering::SeqCst) {
            0 => "null".to_owned(),
            n => format!(
                r#"{{"blockNumber":{},"blockHash":"0x{:032x}{n:032x}","status":"0x1"}}"#,
                quantity(n),
                shared.fork.load(Ordering::SeqCst)
            ),
        },
        "eth_chainId" => quantity(shared.chain_id.load(Ordering::SeqCst)),
        "net_version" => format!("\"{}\"", shared.chain_id.load(Ordering::SeqCst)),
        "eth_getBalance" => format!("\"{MOCK_BALANCE}\""),
        "web3_clientVersion" => "\"meridian-mock-evm/1\"".to_owned(),
        "eth_sendRawTransaction" => {
            let n = shared.tx_count.fetch_add(1, Ordering::SeqCst) + 1;
            format!("\"0x{n:064x}\"")
        }
        _ => {
            return format!(
                r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32601,"message":"the method {} does not exist/is not available"}}}}"#,
                serde_json::Value::String(method.to_owned())
                    .to_string()
                    .trim_matches('"')
            );
        }
    };
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)
}

fn quantity(n: u64) -> String {
    format!("\"0x{n:x}\"")
}

fn json(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::{RpcClient, RpcResponse};

    async fn post(client: &RpcClient, url: &str, body: &str) -> RpcResponse {
        client
            .post(url, body.to_owned())
            .await
            .expect("mock answers")
    }

    #[tokio::test]
    async fn answers_single_and_batch_with_ids_verbatim() {
        let node = MockEvmNode::start_with(0x1b4, 5).await;
        let client = RpcClient::new();
        let r = post(
            &client,
            &node.url(),
            r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"eth_blockNumber","params":[]}"#,
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.text(),
            r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"result":"0x1b4"}"#
        );

        let r = post(
            &client,
            &node.url(),
            r#"[{"jsonrpc":"2.0","id":"a","method":"eth_chainId"},{"jsonrpc":"2.0","id":1.50,"method":"net_version"},{"jsonrpc":"2.0","id":2,"method":"eth_getBalance","params":["0x00","latest"]},{"jsonrpc":"2.0","id":3,"method":"eth_foo"}]"#,
        )
        .await;
        let v = r.json();
        assert_eq!(v[0]["id"], "a");
        assert_eq!(v[0]["result"], "0x5");
        assert_eq!(v[1]["result"], "5");
        assert!(r.text().contains(r#""id":1.50"#), "{}", r.text());
        assert_eq!(v[2]["result"], MOCK_BALANCE);
        assert_eq!(v[3]["error"]["code"], -32601);

        assert_eq!(node.requests("eth_blockNumber"), 1);
        assert_eq!(node.requests("eth_chainId"), 1);
        assert_eq!(node.requests("eth_foo"), 1);
        assert_eq!(node.total_requests(), 2);
        assert_eq!(node.client_requests(), 3);
    }

    #[tokio::test]
    async fn heights_chain_ids_and_transactions_are_controllable() {
        let node = MockEvmNode::start().await;
        let client = RpcClient::new();
        node.set_height(10);
        node.advance(5);
        node.set_chain_id(1);
        assert_eq!(
            client
                .call(&node.url(), "eth_blockNumber")
                .await
                .unwrap()
                .json()["result"],
            "0xf"
        );
        assert_eq!(
            client
                .call(&node.url(), "eth_chainId")
                .await
                .unwrap()
                .json()["result"],
            "0x1"
        );
        let tx = client
            .call(&node.url(), "eth_sendRawTransaction")
            .await
            .unwrap()
            .json();
        let tx2 = client
            .call(&node.url(), "eth_sendRawTransaction")
            .await
            .unwrap()
            .json();
        assert_ne!(tx["result"], tx2["result"]);
        assert_eq!(tx["result"].as_str().unwrap().len(), 66);
        assert_eq!(node.requests("eth_sendRawTransaction"), 2);
        assert_eq!(node.set_height_at(7), 1, "one eth_blockNumber so far");
        assert_eq!(node.height(), 7);
    }

    #[tokio::test]
    async fn faults_are_injected() {
        let node = MockEvmNode::start().await;
        let client = RpcClient::new();
        node.set_fault(Fault::Http500);
        assert_eq!(
            client
                .call(&node.url(), "eth_blockNumber")
                .await
                .unwrap()
                .status,
            500
        );
        node.set_fault(Fault::Malformed);
        let r = client.call(&node.url(), "eth_blockNumber").await.unwrap();
        assert_eq!(r.status, 200);
        assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_err());
        node.set_fault(Fault::Hang);
        let hung = tokio::time::timeout(
            Duration::from_millis(300),
            client.call(&node.url(), "eth_blockNumber"),
        )
        .await;
        assert!(hung.is_err(), "a hanging node must not answer");
        node.set_fault(Fault::Delay(Duration::from_millis(50)));
        assert_eq!(
            client
                .call(&node.url(), "eth_blockNumber")
                .await
                .unwrap()
                .status,
            200
        );
        node.set_fault(Fault::None);
        // Every request was counted, whatever the fault.
        assert_eq!(node.requests("eth_blockNumber"), 4);
        let r = client.post(&node.url(), "not json").await.unwrap();
        assert_eq!(r.status, 400);
        assert_eq!(node.requests(INVALID_BODY), 1);
    }

    #[tokio::test]
    async fn kill_refuses_and_restart_serves_on_the_same_port() {
        let node = MockEvmNode::start().await;
        let client = RpcClient::new();
        // Open a pooled connection first: kill must close it too.
        assert_eq!(
            client
                .call(&node.url(), "eth_blockNumber")
                .await
                .unwrap()
                .status,
            200
        );
        node.set_fault(Fault::Hang);
        let pending = {
            let client = client.clone();
            let url = node.url();
            tokio::spawn(async move { client.call(&url, "eth_blockNumber").await })
        };
        crate::poll::eventually(
            "the hanging request arrives",
            Duration::from_secs(5),
            || async { node.requests("eth_blockNumber") == 2 },
        )
        .await;
        node.kill();
        assert!(!node.is_running());
        let result = tokio::time::timeout(Duration::from_secs(5), pending)
            .await
            .expect("a killed node drops open connections")
            .unwrap();
        assert!(result.is_err(), "the in-flight request fails: {result:?}");
        assert!(client.call(&node.url(), "eth_blockNumber").await.is_err());

        node.set_fault(Fault::None);
        node.restart().await.unwrap();
        let port = node.addr().port();
        let r = client.call(&node.url(), "eth_blockNumber").await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(node.addr().port(), port);
    }
}
