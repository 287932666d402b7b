//! EVM chains: Ethereum execution JSON-RPC.
//!
//! Heights and chain ids are hex quantities (`"0x1b4"`); see
//! `shared/CHAINS.md` for the facts this module relies on. The cache rules
//! are in [`cache`].

use serde_json::Value;
use serde_json::value::RawValue;

use super::hex::parse_quantity;
use super::{
    BlockRef, CacheClass, Chain, ChainKind, MethodClass, PathRoute, ProbeAnswerError, ProbeCall,
};

mod cache;

/// The EVM chain kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evm;

const HEAD: ProbeCall = ProbeCall {
    method: "eth_blockNumber",
    body: r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#,
};

const CHAIN_ID: ProbeCall = ProbeCall {
    method: "eth_chainId",
    body: r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#,
};

const FINALIZED: ProbeCall = ProbeCall {
    method: "eth_getBlockByNumber",
    body: r#"{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["finalized",false]}"#,
};

/// Two epochs of 32 slots: Ethereum's proof of stake finalizes a block
/// about that far behind the head, and chains without the `finalized` tag
/// get a margin of the same order.
const FINALITY_DEPTH: u64 = 64;

/// Methods that change chain state.
const WRITES: [&str; 2] = ["eth_sendRawTransaction", "eth_sendTransaction"];

/// Methods that only make sense on a persistent connection.
const SUBSCRIBES: [&str; 2] = ["eth_subscribe", "eth_unsubscribe"];

/// The common methods of EVM nodes, labelled individually in metrics.
const METRIC_METHODS: &[&str] = &[
    "debug_traceCall",
    "debug_traceTransaction",
    "eth_blockNumber",
    "eth_call",
    "eth_chainId",
    "eth_estimateGas",
    "eth_feeHistory",
    "eth_gasPrice",
    "eth_getBalance",
    "eth_getBlockByHash",
    "eth_getBlockByNumber",
    "eth_getBlockReceipts",
    "eth_getCode",
    "eth_getLogs",
    "eth_getProof",
    "eth_getStorageAt",
    "eth_getTransactionByHash",
    "eth_getTransactionCount",
    "eth_getTransactionReceipt",
    "eth_maxPriorityFeePerGas",
    "eth_sendRawTransaction",
    "eth_sendTransaction",
    "eth_subscribe",
    "eth_syncing",
    "eth_unsubscribe",
    "net_version",
    "trace_block",
    "trace_transaction",
    "web3_clientVersion",
];

/// Where a method names its block: the index of the block parameter.
/// `eth_getLogs` is special (a filter object) and handled separately.
fn block_param_index(method: &str) -> Option<usize> {
    Some(match method {
        "eth_getBlockByNumber"
        | "eth_getBlockTransactionCountByNumber"
        | "eth_getUncleCountByBlockNumber"
        | "eth_getTransactionByBlockNumberAndIndex"
        | "eth_getUncleByBlockNumberAndIndex"
        | "eth_getBlockReceipts"
        | "trace_block"
        | "debug_traceBlockByNumber" => 0,
        "eth_getBalance"
        | "eth_getCode"
        | "eth_getTransactionCount"
        | "eth_call"
        | "eth_estimateGas"
        | "eth_feeHistory"
        | "trace_call"
        | "debug_traceCall" => 1,
        "eth_getStorageAt" | "eth_getProof" => 2,
        _ => return None,
    })
}

/// A block tag or number as JSON: `"latest"`, `"0x10"`, or (EIP-1898)
/// `{"blockNumber": "0x10"}`; a block hash names no height.
fn parse_block(v: &Value) -> Option<BlockRef> {
    match v {
        Value::String(s) => Some(match s.as_str() {
            "earliest" => BlockRef::Earliest,
            "latest" => BlockRef::Latest,
            "pending" => BlockRef::Pending,
            "safe" => BlockRef::Safe,
            "finalized" => BlockRef::Finalized,
            _ => BlockRef::Number(parse_quantity(v).ok()?),
        }),
        Value::Object(o) => o.get("blockNumber").and_then(parse_block),
        _ => None,
    }
}

impl Chain for Evm {
    fn kind(&self) -> ChainKind {
        ChainKind::Evm
    }

    fn head_call(&self) -> ProbeCall {
        HEAD
    }

    fn parse_head(&self, result: &Value) -> Result<u64, ProbeAnswerError> {
        parse_quantity(result)
    }

    fn chain_id_call(&self) -> ProbeCall {
        CHAIN_ID
    }

    fn parse_chain_id(&self, result: &Value) -> Result<String, ProbeAnswerError> {
        // Canonical decimal, so "0x01" and "0x1" compare equal.
        parse_quantity(result).map(|id| id.to_string())
    }

    fn finalized_call(&self) -> Option<ProbeCall> {
        Some(FINALIZED)
    }

    fn parse_finalized(&self, result: &Value) -> Result<Option<u64>, ProbeAnswerError> {
        // `null` when the chain has no finalized block yet; a block object
        // otherwise, whose `number` is a quantity.
        match result {
            Value::Null => Ok(None),
            Value::Object(block) => match block.get("number") {
                Some(number) => parse_quantity(number).map(Some),
                None => Err(ProbeAnswerError("block without a number".into())),
            },
            other => Err(ProbeAnswerError(format!(
                "expected a block or null, got {other}"
            ))),
        }
    }

    fn default_finality_depth(&self) -> u64 {
        FINALITY_DEPTH
    }

    fn cache_class(&self, method: &str, params: Option<&RawValue>) -> CacheClass {
        cache::class(method, params)
    }

    fn answer_block(&self, result: &RawValue) -> Option<u64> {
        cache::answer_block(result)
    }

    fn answer_block_hash(&self, result: &RawValue) -> Option<(u64, String)> {
        cache::answer_block_hash(result)
    }

    fn canonical_params(&self, method: &str, params: Option<&RawValue>) -> Option<String> {
        cache::canonical_params(method, params)
    }

    fn path_route(&self, path: &str) -> Option<PathRoute> {
        // JSON-RPC at the network's own path; `/archive` sends every read to
        // archive upstreams.
        match path.trim_end_matches('/') {
            "" => Some(PathRoute::DEFAULT),
            "/archive" => Some(PathRoute {
                archive: true,
                forward: false,
            }),
            _ => None,
        }
    }

    fn method_class(&self, method: &str) -> MethodClass {
        if WRITES.contains(&method) {
            MethodClass::Write
        } else if SUBSCRIBES.contains(&method) {
            MethodClass::Subscribe
        } else {
            MethodClass::Read
        }
    }

    fn metric_methods(&self) -> &'static [&'static str] {
        METRIC_METHODS
    }

    fn block_ref(&self, method: &str, params: Option<&RawValue>) -> Option<BlockRef> {
        let params: Vec<Value> = serde_json::from_str(params?.get()).ok()?;
        if method == "eth_getLogs" {
            // A log query reaches back to its fromBlock (default: latest).
            let filter = params.first()?.as_object()?;
            return match filter.get("fromBlock") {
                Some(from) => parse_block(from),
                None if filter.contains_key("blockHash") => None,
                None => Some(BlockRef::Latest),
            };
        }
        // An omitted optional block parameter means "latest".
        match params.get(block_param_index(method)?) {
            Some(v) => parse_block(v),
            None => Some(BlockRef::Latest),
        }
    }

    fn is_already_known(&self, error: &RawValue) -> bool {
        let Some(m) = super::error_message(error) else {
            return false;
        };
        // geth: "already known"; besu/nethermind: "Known transaction",
        // "AlreadyKnown"; erigon: "ALREADY_EXISTS: already known".
        m.contains("already known") || m.contains("alreadyknown") || m.contains("known transaction")
    }

    fn broadcastable(&self, method: &str) -> bool {
        method == "eth_sendRawTransaction"
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_the_finalized_block() {
        assert_eq!(
            Evm.parse_finalized(&json!({"number": "0x64", "hash": "0xab"})),
            Ok(Some(100))
        );
        assert_eq!(Evm.parse_finalized(&json!(null)), Ok(None));
        assert!(Evm.parse_finalized(&json!({"hash": "0xab"})).is_err());
        assert!(Evm.parse_finalized(&json!({"number": 100})).is_err());
        assert!(Evm.parse_finalized(&json!("0x64")).is_err());
        let call = Evm.finalized_call().unwrap();
        let body: Value = serde_json::from_str(call.body).unwrap();
        assert_eq!(body["params"], json!(["finalized", false]));
    }

    #[test]
    fn parses_heights() {
        assert_eq!(Evm.parse_head(&json!("0x1b4")), Ok(436));
        assert_eq!(Evm.parse_head(&json!("0x0")), Ok(0));
        assert!(Evm.parse_head(&json!(436)).is_err());
        assert!(Evm.parse_head(&json!("1b4")).is_err());
        assert!(Evm.parse_head(&json!("0x")).is_err());
        assert!(Evm.parse_head(&json!("0xzz")).is_err());
        assert!(Evm.parse_head(&json!("0x1ffffffffffffffff")).is_err());
    }

    #[test]
    fn canonical_chain_ids() {
        assert_eq!(
            Evm.parse_chain_id(&json!("0x01")),
            Evm.parse_chain_id(&json!("0x1"))
        );
    }

    #[test]
    fn classifies_methods() {
        assert_eq!(
            Evm.method_class("eth_sendRawTransaction"),
            MethodClass::Write
        );
        assert_eq!(Evm.method_class("eth_subscribe"), MethodClass::Subscribe);
        assert_eq!(Evm.method_class("eth_getBalance"), MethodClass::Read);
    }

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn finds_block_references() {
        let p = raw(r#"["0xabc", "0x10"]"#);
        assert_eq!(
            Evm.block_ref("eth_getBalance", Some(&p)),
            Some(BlockRef::Number(16))
        );
        let p = raw(r#"["0xabc"]"#);
        assert_eq!(
            Evm.block_ref("eth_getBalance", Some(&p)),
            Some(BlockRef::Latest)
        );
        let p = raw(r#"["finalized", false]"#);
        assert_eq!(
            Evm.block_ref("eth_getBlockByNumber", Some(&p)),
            Some(BlockRef::Finalized)
        );
        let p = raw(r#"[{"fromBlock":"0x5","toBlock":"latest"}]"#);
        assert_eq!(
            Evm.block_ref("eth_getLogs", Some(&p)),
            Some(BlockRef::Number(5))
        );
        let p = raw(r#"[{"to":"0x1"}, {"blockNumber":"0x7"}]"#);
        assert_eq!(
            Evm.block_ref("eth_call", Some(&p)),
            Some(BlockRef::Number(7))
        );
        let p = raw(r#"["0xhash"]"#);
        assert_eq!(Evm.block_ref("eth_getBlockByHash", Some(&p)), None);
        assert_eq!(Evm.block_ref("eth_getBalance", None), None);
    }

    #[test]
    fn recognises_already_known() {
        assert!(Evm.is_already_known(&raw(r#"{"code":-32000,"message":"already known"}"#)));
        assert!(Evm.is_already_known(&raw(r#"{"code":-32010,"message":"Known transaction"}"#)));
        assert!(!Evm.is_already_known(&raw(r#"{"code":-32000,"message":"nonce too low"}"#)));
        assert!(Evm.broadcastable("eth_sendRawTransaction"));
        assert!(!Evm.broadcastable("eth_sendTransaction"));
    }

    #[test]
    fn probe_bodies_are_json_rpc() {
        for call in [Evm.head_call(), Evm.chain_id_call()] {
            let v: Value = serde_json::from_str(call.body).unwrap();
            assert_eq!(v["method"], call.method);
        }
    }
}
