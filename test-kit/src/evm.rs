//! A mock EVM node whose height, chain id, finality, receipts, forks and
//! faults tests control, on the shared mock server ([`crate::server`]).
//!
//! It speaks just enough Ethereum JSON-RPC for Meridian's probes and
//! request path: `eth_blockNumber`, `eth_chainId`, `net_version`,
//! `eth_getBalance`, `eth_gasPrice`, `eth_getBlockByNumber` (numbers and
//! `finalized`), `eth_getTransactionReceipt`, `eth_sendRawTransaction` and
//! `web3_clientVersion`; anything else is answered with -32601.
//!
//! Every call is counted per method, so a test can prove how many probes a
//! node saw (hysteresis) or that a refused client request never reached it.
//!
//! A *named* node ([`MockEvmNode::named`]) answers every `eth_`, `net_`,
//! `web3_`, `debug_` and `admin_` call with its own name as the result, so
//! a request-path test sees at once which upstream answered. Every node
//! also answers the JSON-RPC 2.0 specification's examples (`subtract`,
//! `sum`, `get_data`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::server::{Answer, Call, Counts, MockChain, MockServer};
pub use crate::server::{Fault, INVALID_BODY, MockStartError};

/// The balance every account has on a mock node (1 ether, in wei).
pub const MOCK_BALANCE: &str = "0xde0b6b3a7640000";

/// The method probes use to read the head height.
const HEAD_METHOD: &str = "eth_blockNumber";

/// What `requests` counts `eth_getBlockByNumber("finalized")` under: the
/// control plane's finality probe, apart from clients' block reads.
pub const FINALIZED_PROBE: &str = "eth_getBlockByNumber(finalized)";

/// The fault of a node that already has the transaction (geth's words).
pub const ALREADY_KNOWN: Fault = Fault::RpcError(-32000, "already known");

/// The chain state of a mock EVM node.
#[derive(Debug)]
pub struct EvmChain {
    /// Answers every common call with this name ([`MockEvmNode::named`]).
    name: Option<&'static str>,
    height: Arc<AtomicU64>,
    chain_id: AtomicU64,
    /// Answered to `eth_getBlockByNumber("finalized")`; 0: `null`.
    finalized: AtomicU64,
    /// Block of every transaction's receipt; 0: not mined (`null`).
    receipt_block: AtomicU64,
    /// Part of every block hash: a new fork replaces every block.
    fork: AtomicU64,
    tx_count: AtomicU64,
}

/// Moves a node's head from another task (e.g. a ticker) without owning the node.
#[derive(Debug, Clone)]
pub struct HeightHandle(Arc<AtomicU64>);

impl HeightHandle {
    /// Moves the head `n` blocks forward.
    pub fn advance(&self, n: u64) {
        self.0.fetch_add(n, Ordering::SeqCst);
    }
}

/// A running (or killed) mock EVM node. Dropping it stops the server.
#[derive(Debug)]
pub struct MockEvmNode {
    server: MockServer<EvmChain>,
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
        MockEvmNode {
            server: MockServer::start(EvmChain::new(height, chain_id)),
        }
    }

    /// Starts a node that answers every common call with `name`.
    pub async fn named(name: &'static str) -> MockEvmNode {
        let mut chain = EvmChain::new(100, 1337);
        chain.name = Some(name);
        MockEvmNode {
            server: MockServer::start(chain),
        }
    }

    /// The node's name ([`MockEvmNode::named`]), if it has one.
    pub fn name(&self) -> Option<&'static str> {
        self.chain().name
    }

    /// Starts a node on `addr` (port 0 allowed).
    pub async fn try_start_on(
        addr: SocketAddr,
        height: u64,
        chain_id: u64,
    ) -> Result<MockEvmNode, MockStartError> {
        Ok(MockEvmNode {
            server: MockServer::start_on(addr, EvmChain::new(height, chain_id))?,
        })
    }

    fn chain(&self) -> &EvmChain {
        self.server.chain()
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The height `eth_blockNumber` reports.
    pub fn height(&self) -> u64 {
        self.chain().height.load(Ordering::SeqCst)
    }

    /// Sets the height `eth_blockNumber` reports.
    pub fn set_height(&self, height: u64) {
        self.chain().height.store(height, Ordering::SeqCst);
    }

    /// Sets the height and returns how many `eth_blockNumber` calls arrived
    /// before the change, atomically: every call counted after the returned
    /// number sees the new height, every call before it saw an older one.
    /// This lets a test count exactly the probes that saw a condition.
    pub fn set_height_at(&self, height: u64) -> u64 {
        self.server.counts().changed_at(HEAD_METHOD, || {
            self.chain().height.store(height, Ordering::SeqCst);
        })
    }

    /// A handle that moves this node's head from another task.
    pub fn height_handle(&self) -> HeightHandle {
        HeightHandle(self.chain().height.clone())
    }

    /// Moves the head `n` blocks forward.
    pub fn advance(&self, n: u64) {
        self.chain().height.fetch_add(n, Ordering::SeqCst);
    }

    /// The block `eth_getBlockByNumber("finalized")` answers (0: `null`,
    /// as a chain without a finalized block yet).
    pub fn set_finalized(&self, height: u64) {
        self.chain().finalized.store(height, Ordering::SeqCst);
    }

    /// Every receipt is in `block` from now on (0: not mined, `null`).
    pub fn set_receipt_block(&self, block: u64) {
        self.chain().receipt_block.store(block, Ordering::SeqCst);
    }

    /// Replaces every block (their hashes change): a reorg.
    pub fn fork(&self) {
        self.chain().fork.fetch_add(1, Ordering::SeqCst);
    }

    /// Sets the id `eth_chainId` (and `net_version`) report.
    pub fn set_chain_id(&self, chain_id: u64) {
        self.chain().chain_id.store(chain_id, Ordering::SeqCst);
    }

    /// Client traffic: every call except the probes' `eth_blockNumber`,
    /// `eth_chainId` and `eth_getBlockByNumber("finalized")`.
    pub fn client_requests(&self) -> u64 {
        self.server
            .requests_except(&["eth_blockNumber", "eth_chainId", FINALIZED_PROBE])
    }
}

/// Faults, counters, the call log, kill and restart: the shared server's.
impl std::ops::Deref for MockEvmNode {
    type Target = MockServer<EvmChain>;

    fn deref(&self) -> &Self::Target {
        &self.server
    }
}

impl EvmChain {
    fn new(height: u64, chain_id: u64) -> Self {
        Self {
            name: None,
            height: Arc::new(AtomicU64::new(height)),
            chain_id: AtomicU64::new(chain_id),
            finalized: AtomicU64::new(0),
            receipt_block: AtomicU64::new(0),
            fork: AtomicU64::new(0),
            tx_count: AtomicU64::new(0),
        }
    }
}

impl MockChain for EvmChain {
    fn answer(&self, call: &Call<'_>, counts: &Counts) -> Answer {
        let method = call.method();
        if let Some(result) = spec_example(method, call.params) {
            counts.count(method);
            return call.result(&result);
        }
        if let Some(name) = self.name {
            counts.count(if method.is_empty() {
                INVALID_BODY
            } else {
                method
            });
            const COMMON: [&str; 5] = ["eth_", "net_", "web3_", "debug_", "admin_"];
            return if COMMON.iter().any(|p| method.starts_with(p)) {
                call.result(&serde_json::Value::String(name.to_owned()).to_string())
            } else {
                call.error(-32601, "Method not found")
            };
        }
        if method == HEAD_METHOD {
            // Read under the counter's lock: see `set_height_at`.
            let height = counts.count_then(HEAD_METHOD, || self.height.load(Ordering::SeqCst));
            return call.result(&quantity(height));
        }
        if method == "eth_getBlockByNumber"
            && call
                .params
                .is_some_and(|p| p.get().replace(' ', "").starts_with(r#"["finalized""#))
        {
            counts.count(FINALIZED_PROBE);
            let result = match self.finalized.load(Ordering::SeqCst) {
                0 => "null".to_owned(),
                n => format!(r#"{{"number":{},"hash":"0x{n:064x}"}}"#, quantity(n)),
            };
            return call.result(&result);
        }
        counts.count(if method.is_empty() {
            INVALID_BODY
        } else {
            method
        });
        let result = match method {
            "eth_gasPrice" => quantity(1_000_000_000 + self.height.load(Ordering::SeqCst)),
            "eth_getBlockByNumber" => {
                let number = call
                    .params
                    .and_then(|p| serde_json::from_str::<(String, bool)>(p.get()).ok())
                    .and_then(|(n, _)| u64::from_str_radix(n.trim_start_matches("0x"), 16).ok());
                match number {
                    Some(n) if n <= self.height.load(Ordering::SeqCst) => format!(
                        r#"{{"number":{},"hash":"0x{:032x}{n:032x}","transactions":[]}}"#,
                        quantity(n),
                        self.fork.load(Ordering::SeqCst)
                    ),
                    _ => "null".to_owned(),
                }
            }
            "eth_getTransactionReceipt" => match self.receipt_block.load(Ordering::SeqCst) {
                0 => "null".to_owned(),
                n => format!(
                    r#"{{"blockNumber":{},"blockHash":"0x{:032x}{n:032x}","status":"0x1"}}"#,
                    quantity(n),
                    self.fork.load(Ordering::SeqCst)
                ),
            },
            "eth_chainId" => quantity(self.chain_id.load(Ordering::SeqCst)),
            "net_version" => format!("\"{}\"", self.chain_id.load(Ordering::SeqCst)),
            "eth_getBalance" => format!("\"{MOCK_BALANCE}\""),
            "web3_clientVersion" => "\"meridian-mock-evm/1\"".to_owned(),
            "eth_sendRawTransaction" => {
                let n = self.tx_count.fetch_add(1, Ordering::SeqCst) + 1;
                format!("\"0x{n:064x}\"")
            }
            _ => {
                return call.error(
                    -32601,
                    &format!("the method {method} does not exist/is not available"),
                );
            }
        };
        call.result(&result)
    }
}

/// The JSON-RPC 2.0 specification's example methods.
fn spec_example(method: &str, params: Option<&serde_json::value::RawValue>) -> Option<String> {
    let p: serde_json::Value = params
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or_default();
    let n = |v: &serde_json::Value| v.as_i64().unwrap_or(0);
    Some(match method {
        "subtract" if p.is_array() => (n(&p[0]) - n(&p[1])).to_string(),
        "subtract" => (n(&p["minuend"]) - n(&p["subtrahend"])).to_string(),
        "sum" => p
            .as_array()
            .map_or(0, |a| a.iter().map(n).sum::<i64>())
            .to_string(),
        "get_data" => r#"["hello",5]"#.to_owned(),
        _ => return None,
    })
}

fn quantity(n: u64) -> String {
    format!("\"0x{n:x}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        node.set_fault(Fault::Status(500));
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
