//! A mock ICON node (goloop JSON-RPC v3) whose height, network id,
//! transactions, P-Rep list and faults tests control, on the shared mock
//! server ([`crate::server`]).
//!
//! It serves JSON-RPC only at goloop's paths (`/api/v3`, `/api/v3/<channel>`,
//! `/api/v3d[/<channel>]`; anything else is HTTP 404) and answers a failed
//! single call with HTTP 400, as goloop does (a batch is HTTP 200). Blocks
//! carry `height` as a JSON number and `block_hash` without `0x`; every
//! other number is a T_INT (`"0x…"`). Methods: `icx_getLastBlock`,
//! `icx_getBlockByHeight`, `icx_getBlockByHash`, `icx_getNetworkInfo`,
//! `icx_getBalance`, `icx_getTotalSupply`, `icx_sendTransaction` (the
//! transaction is in the next block), `icx_getTransactionResult` (-31002
//! pending until the head reaches that block, -31004 for an unknown hash),
//! and `icx_call` of the chain SCORE's `getPReps`; anything else is -32601.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use http::StatusCode;
use serde_json::{Value, json};

use crate::server::{Answer, Call, Counts, MockChain, MockServer};
pub use crate::server::{Fault, INVALID_BODY, MockStartError};

/// The balance of every account on a mock ICON node (1 ICX, in loop).
pub const MOCK_BALANCE: &str = "0xde0b6b3a7640000";

/// The total supply a mock ICON node reports.
pub const MOCK_TOTAL_SUPPLY: &str = "0x2961fff8ca4a62327800000";

/// The chain SCORE, which answers `getPReps`.
pub const CHAIN_SCORE: &str = "cx0000000000000000000000000000000000000000";

/// The channel of the ICON networks.
pub const CHANNEL: &str = "icon_dex";

/// The probes' methods, for [`MockIconNode::client_requests`].
pub const PROBE_METHODS: [&str; 2] = ["icx_getLastBlock", "icx_getNetworkInfo"];

/// One P-Rep as `getPReps` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PRep {
    /// The P-Rep's wallet address (`hx…`).
    pub address: String,
    pub name: String,
    /// `0x0` main, `0x1` sub, `0x2` candidate.
    pub grade: String,
    /// `0x0` active, `0x1` unregistered, `0x2` disqualified.
    pub status: String,
    /// `host:port` of its P2P endpoint (7100 on the ICON networks).
    pub p2p_endpoint: String,
    /// The node's own address (`hx…`).
    pub node_address: String,
}

/// The chain state of a mock ICON node.
#[derive(Debug)]
pub struct IconChain {
    height: AtomicU64,
    nid: AtomicU64,
    /// Part of every block hash: a new fork replaces every block.
    fork: AtomicU64,
    /// Transactions sent, by hash, with the height of their block.
    txs: Mutex<HashMap<String, u64>>,
    tx_count: AtomicU64,
    preps: Mutex<Vec<PRep>>,
}

/// A running (or killed) mock ICON node. Dropping it stops the server.
#[derive(Debug)]
pub struct MockIconNode {
    server: MockServer<IconChain>,
}

impl MockIconNode {
    /// Starts a node at `height` of network `nid` on 127.0.0.1 at a free
    /// port.
    pub fn start(height: u64, nid: u64) -> MockIconNode {
        MockIconNode {
            server: MockServer::start(IconChain::new(height, nid)),
        }
    }

    /// Starts a node on `addr` (port 0 allowed).
    pub fn try_start_on(
        addr: SocketAddr,
        height: u64,
        nid: u64,
    ) -> Result<MockIconNode, MockStartError> {
        Ok(MockIconNode {
            server: MockServer::start_on(addr, IconChain::new(height, nid))?,
        })
    }

    fn chain(&self) -> &IconChain {
        self.server.chain()
    }

    /// `http://127.0.0.1:PORT/api/v3`: the URL an upstream is configured with.
    pub fn url(&self) -> String {
        format!("http://{}/api/v3", self.server.addr())
    }

    /// `http://127.0.0.1:PORT`
    pub fn root(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The height `icx_getLastBlock` reports.
    pub fn height(&self) -> u64 {
        self.chain().height.load(Ordering::SeqCst)
    }

    pub fn set_height(&self, height: u64) {
        self.chain().height.store(height, Ordering::SeqCst);
    }

    /// Moves the head `n` blocks forward (mining what was sent).
    pub fn advance(&self, n: u64) {
        self.chain().height.fetch_add(n, Ordering::SeqCst);
    }

    /// The network id `icx_getNetworkInfo` reports.
    pub fn set_nid(&self, nid: u64) {
        self.chain().nid.store(nid, Ordering::SeqCst);
    }

    /// Replaces every block (their hashes change).
    pub fn fork(&self) {
        self.chain().fork.fetch_add(1, Ordering::SeqCst);
    }

    /// The P-Reps `getPReps` lists from now on.
    pub fn set_preps(&self, preps: Vec<PRep>) {
        *self
            .chain()
            .preps
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = preps;
    }

    /// Client traffic: every call except the probes'.
    pub fn client_requests(&self) -> u64 {
        self.server.requests_except(&PROBE_METHODS)
    }
}

/// Faults, counters, kill and restart: the shared server's.
impl std::ops::Deref for MockIconNode {
    type Target = MockServer<IconChain>;

    fn deref(&self) -> &Self::Target {
        &self.server
    }
}

impl IconChain {
    fn new(height: u64, nid: u64) -> Self {
        Self {
            height: AtomicU64::new(height),
            nid: AtomicU64::new(nid),
            fork: AtomicU64::new(0),
            txs: Mutex::new(HashMap::new()),
            tx_count: AtomicU64::new(0),
            preps: Mutex::new(Vec::new()),
        }
    }

    fn block_hash(&self, height: u64) -> String {
        format!("{:032x}{height:032x}", self.fork.load(Ordering::SeqCst))
    }

    /// A block as goloop's v3 JSON writes it.
    fn block(&self, height: u64) -> Value {
        let prev = if height == 0 {
            String::new()
        } else {
            self.block_hash(height - 1)
        };
        let txs: Vec<Value> = self
            .txs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, h)| **h == height)
            .map(|(hash, _)| json!({"txHash": hash, "version": "0x3", "dataType": "base"}))
            .collect();
        json!({
            "version": "2.0",
            "height": height,
            "time_stamp": 1_700_000_000_000_000u64 + height * 2_000_000,
            "block_hash": self.block_hash(height),
            "prev_block_hash": prev,
            "merkle_tree_root_hash": format!("{height:064x}"),
            "peer_id": "hx0000000000000000000000000000000000000001",
            "signature": "",
            "confirmed_transaction_list": txs,
        })
    }

    fn head(&self) -> u64 {
        self.height.load(Ordering::SeqCst)
    }

    fn preps(&self) -> Value {
        let preps = self.preps.lock().unwrap_or_else(PoisonError::into_inner);
        let listed: Vec<Value> = preps
            .iter()
            .map(|p| {
                json!({
                    "address": p.address,
                    "name": p.name,
                    "grade": p.grade,
                    "status": p.status,
                    "p2pEndpoint": p.p2p_endpoint,
                    "nodeAddress": p.node_address,
                    "country": "KOR",
                    "city": "Seoul",
                    "delegated": "0x0",
                    "power": "0x0",
                })
            })
            .collect();
        json!({
            "blockHeight": hex(self.head()),
            "startRanking": "0x1",
            "totalDelegated": "0x0",
            "totalStake": "0x0",
            "preps": listed,
        })
    }
}

/// A param of a call's params object.
fn param<'v>(params: &'v Option<Value>, key: &str) -> Option<&'v Value> {
    params.as_ref()?.get(key)
}

fn t_int(v: Option<&Value>) -> Option<u64> {
    let s = v?.as_str()?.strip_prefix("0x")?;
    u64::from_str_radix(s, 16).ok()
}

fn hex(n: u64) -> String {
    format!("{n:#x}")
}

impl MockChain for IconChain {
    fn answer(&self, call: &Call<'_>, counts: &Counts) -> Answer {
        let method = call.method();
        counts.count(if method.is_empty() {
            INVALID_BODY
        } else {
            method
        });
        let params: Option<Value> = call.params.and_then(|p| serde_json::from_str(p.get()).ok());
        let result = match method {
            "icx_getLastBlock" => self.block(self.head()),
            "icx_getBlockByHeight" => match t_int(param(&params, "height")) {
                Some(h) if h <= self.head() => self.block(h),
                Some(h) => return call.error(-31004, &format!("NotFound: no block at {h}")),
                None => return call.error(-32602, "InvalidParams: height"),
            },
            "icx_getBlockByHash" => {
                let wanted = param(&params, "hash")
                    .and_then(Value::as_str)
                    .map(|h| h.trim_start_matches("0x").to_ascii_lowercase());
                match (0..=self.head()).find(|h| Some(self.block_hash(*h)) == wanted) {
                    Some(h) => self.block(h),
                    None => return call.error(-31004, "NotFound: no such block"),
                }
            }
            "icx_getNetworkInfo" => json!({
                "platform": "icon",
                "nid": hex(self.nid.load(Ordering::SeqCst)),
                "channel": CHANNEL,
                "earliest": "0x0",
                "latest": hex(self.head()),
                "stepPrice": "0x2e90edd00",
            }),
            "icx_getBalance" => match param(&params, "address") {
                Some(_) => json!(MOCK_BALANCE),
                None => return call.error(-32602, "InvalidParams: address"),
            },
            "icx_getTotalSupply" => json!(MOCK_TOTAL_SUPPLY),
            "icx_sendTransaction" => {
                if param(&params, "signature").is_none() || param(&params, "from").is_none() {
                    return call.error(-32602, "InvalidParams: not a signed transaction");
                }
                let n = self.tx_count.fetch_add(1, Ordering::SeqCst) + 1;
                let hash = format!("0x{n:064x}");
                self.txs
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(hash.clone(), self.head() + 1);
                json!(hash)
            }
            "icx_getTransactionResult" => {
                let hash = param(&params, "txHash").and_then(Value::as_str);
                let block = hash.and_then(|h| {
                    self.txs
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get(h)
                        .copied()
                });
                match (hash, block) {
                    (Some(hash), Some(b)) if b <= self.head() => json!({
                        "status": "0x1",
                        "to": "hx0000000000000000000000000000000000000002",
                        "txHash": hash,
                        "txIndex": "0x0",
                        "blockHeight": hex(b),
                        "blockHash": format!("0x{}", self.block_hash(b)),
                        "cumulativeStepUsed": "0x186a0",
                        "stepUsed": "0x186a0",
                        "stepPrice": "0x2e90edd00",
                        "eventLogs": [],
                        "logsBloom": format!("0x{}", "0".repeat(512)),
                    }),
                    (Some(_), Some(_)) => return call.error(-31002, "Pending: not in a block yet"),
                    _ => return call.error(-31004, "NotFound: no such transaction"),
                }
            }
            "icx_call" => {
                let to = param(&params, "to").and_then(Value::as_str);
                let score_method = params
                    .as_ref()
                    .and_then(|p| p.pointer("/data/method"))
                    .and_then(Value::as_str);
                match (to, score_method) {
                    (Some(CHAIN_SCORE), Some("getPReps")) => self.preps(),
                    _ => return call.error(-30003, "MethodNotFound: not on this mock"),
                }
            }
            _ => return call.error(-32601, &format!("MethodNotFound: {method}")),
        };
        call.result(&result.to_string())
    }

    fn serves_path(&self, path: &str) -> bool {
        let path = path.trim_end_matches('/');
        ["/api/v3", "/api/v3d"].iter().any(|base| {
            path == *base
                || path
                    .strip_prefix(base)
                    .and_then(|rest| rest.strip_prefix('/'))
                    .is_some_and(|channel| !channel.is_empty() && !channel.contains('/'))
        })
    }

    fn single_status(&self, error: bool) -> StatusCode {
        // goloop: HTTP 400 for a single call that failed.
        if error {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::RpcClient;

    async fn post(client: &RpcClient, url: &str, body: Value) -> (u16, Value) {
        let r = client.post(url, body.to_string()).await.unwrap();
        (r.status, r.json())
    }

    #[tokio::test]
    async fn speaks_goloop_v3_at_its_paths() {
        let node = MockIconNode::start(1_000, 1);
        let client = RpcClient::new();
        let (status, block) = post(
            &client,
            &node.url(),
            json!({"jsonrpc": "2.0", "id": 1, "method": "icx_getLastBlock"}),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(block["result"]["height"], 1_000);
        assert!(
            !block["result"]["block_hash"]
                .as_str()
                .unwrap()
                .starts_with("0x")
        );
        let channel = format!("{}/{CHANNEL}", node.url());
        let (_, info) = post(
            &client,
            &channel,
            json!({"jsonrpc": "2.0", "id": 2, "method": "icx_getNetworkInfo"}),
        )
        .await;
        assert_eq!(info["result"]["nid"], "0x1");
        assert_eq!(info["result"]["latest"], "0x3e8");
        let r = client
            .post(&format!("{}/other", node.root()), "{}".to_owned())
            .await
            .unwrap();
        assert_eq!(r.status, 404, "not a goloop path");
        // A failed single call is HTTP 400, a batch 200.
        let (status, err) = post(
            &client,
            &node.url(),
            json!({"jsonrpc": "2.0", "id": 3, "method": "icx_getBlockByHeight", "params": {"height": "0x7d0"}}),
        )
        .await;
        assert_eq!((status, err["error"]["code"].as_i64()), (400, Some(-31004)));
        let (status, batch) = post(
            &client,
            &node.url(),
            json!([{"jsonrpc": "2.0", "id": 4, "method": "icx_nope"},
                   {"jsonrpc": "2.0", "id": 5, "method": "icx_getTotalSupply"}]),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(batch[1]["result"], MOCK_TOTAL_SUPPLY);
        assert_eq!(node.client_requests(), 3);
    }

    #[tokio::test]
    async fn a_transaction_is_pending_until_its_block_and_preps_are_listed() {
        let node = MockIconNode::start(10, 1);
        let client = RpcClient::new();
        let tx = json!({"jsonrpc": "2.0", "id": 1, "method": "icx_sendTransaction",
            "params": {"version": "0x3", "from": "hx01", "to": "hx02", "signature": "c2ln"}});
        let (_, sent) = post(&client, &node.url(), tx).await;
        let hash = sent["result"].as_str().unwrap().to_owned();
        let result = json!({"jsonrpc": "2.0", "id": 2, "method": "icx_getTransactionResult",
            "params": {"txHash": hash}});
        let (status, pending) = post(&client, &node.url(), result.clone()).await;
        assert_eq!(
            (status, pending["error"]["code"].as_i64()),
            (400, Some(-31002))
        );
        node.advance(1);
        let (_, mined) = post(&client, &node.url(), result).await;
        assert_eq!(mined["result"]["blockHeight"], "0xb");
        node.set_preps(vec![PRep {
            address: "hx11".into(),
            name: "one".into(),
            grade: "0x0".into(),
            status: "0x0".into(),
            p2p_endpoint: "127.0.0.1:7100".into(),
            node_address: "hx12".into(),
        }]);
        let (_, preps) = post(
            &client,
            &node.url(),
            json!({"jsonrpc": "2.0", "id": 3, "method": "icx_call", "params": {
                "to": CHAIN_SCORE, "dataType": "call",
                "data": {"method": "getPReps", "params": {"startRanking": "0x1"}}}}),
        )
        .await;
        assert_eq!(preps["result"]["preps"][0]["p2pEndpoint"], "127.0.0.1:7100");
    }
}
