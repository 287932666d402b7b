//! ICON chains: goloop's JSON-RPC v3 (`/api/v3[/<channel>]`).
//!
//! Params are one object (`{"height": "0x10"}`), never an array; hex
//! values are `0x`-prefixed T_INTs, except in blocks, whose `height` is a
//! plain JSON number and whose `block_hash` has no `0x`. The facts are in
//! `shared/CHAINS.md`, checked against goloop's `server/v3` and
//! `doc/jsonrpc_v3.md`. The cache rules are in [`cache`].

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{
    BlockRef, CacheClass, Chain, ChainKind, MethodClass, PathRoute, ProbeAnswerError, ProbeCall,
};

mod cache;

/// The ICON chain kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Icon;

const HEAD: ProbeCall = ProbeCall {
    method: "icx_getLastBlock",
    body: r#"{"jsonrpc":"2.0","id":1,"method":"icx_getLastBlock"}"#,
};

/// `nid` (the network id: 0x1 on the ICON main net) names the chain;
/// `latest` is the latest finalized height.
const NETWORK_INFO: ProbeCall = ProbeCall {
    method: "icx_getNetworkInfo",
    body: r#"{"jsonrpc":"2.0","id":1,"method":"icx_getNetworkInfo"}"#,
};

/// ICON 2 (goloop) commits a block by a BFT round: a block a node returns
/// is final. Nodes report the finalized height themselves
/// (`icx_getNetworkInfo.latest`); without it, one block of margin.
const FINALITY_DEPTH: u64 = 1;

/// Methods that change chain state.
const WRITES: [&str; 2] = ["icx_sendTransaction", "icx_sendTransactionAndWait"];

/// The methods goloop registers on `/api/v3` and `/api/v3d`, labelled
/// individually in metrics. `getDelegation`, `getPReps`, … are `icx_call`s
/// to the chain SCORE and count as `icx_call`.
const METRIC_METHODS: &[&str] = &[
    "btp_getHeader",
    "btp_getMessages",
    "btp_getNetworkInfo",
    "btp_getNetworkTypeInfo",
    "btp_getProof",
    "btp_getSourceInformation",
    "debug_estimateStep",
    "debug_getTrace",
    "icx_call",
    "icx_getBalance",
    "icx_getBlockByHash",
    "icx_getBlockByHeight",
    "icx_getBlockHeaderByHeight",
    "icx_getDataByHash",
    "icx_getLastBlock",
    "icx_getNetworkInfo",
    "icx_getProofForEvents",
    "icx_getProofForResult",
    "icx_getScoreApi",
    "icx_getScoreStatus",
    "icx_getTotalSupply",
    "icx_getTransactionByHash",
    "icx_getTransactionResult",
    "icx_getVotesByHeight",
    "icx_sendTransaction",
    "icx_sendTransactionAndWait",
    "icx_waitTransactionResult",
];

/// Parses an ICON T_INT (`"0x"` + lower-case hex, no padding; upper case
/// and padding are accepted, nodes and clients differ) of at most 64 bits.
fn parse_int(v: &Value) -> Result<u64, ProbeAnswerError> {
    super::hex::parse_quantity(v)
}

/// A JSON number that is a height (a block's `height`).
fn parse_height(v: &Value) -> Result<u64, ProbeAnswerError> {
    v.as_u64()
        .ok_or_else(|| ProbeAnswerError(format!("expected a block height (a number), got {v}")))
}

/// The `height` member of a call's params object, if any.
fn height_param(params: Option<&RawValue>) -> Option<Option<u64>> {
    #[derive(Deserialize)]
    struct WithHeight<'a> {
        #[serde(borrow, default)]
        height: Option<&'a RawValue>,
    }
    let Some(params) = params else {
        return Some(None);
    };
    let p: WithHeight<'_> = serde_json::from_str(params.get()).ok()?;
    match p.height {
        None => Some(None),
        Some(h) => parse_int(&serde_json::from_str(h.get()).ok()?)
            .ok()
            .map(Some),
    }
}

/// Methods that read at the block named by an optional `height` param
/// (goloop's `HeightParam` and its kin), at the last block without it.
const AT_OPTIONAL_HEIGHT: &[&str] = &[
    "icx_call",
    "icx_getBalance",
    "icx_getScoreApi",
    "icx_getScoreStatus",
    "icx_getTotalSupply",
];

/// Methods whose `height` param is required.
const AT_HEIGHT: &[&str] = &[
    "icx_getBlockByHeight",
    "icx_getBlockHeaderByHeight",
    "icx_getVotesByHeight",
];

impl Chain for Icon {
    fn kind(&self) -> ChainKind {
        ChainKind::Icon
    }

    fn head_call(&self) -> ProbeCall {
        HEAD
    }

    fn parse_head(&self, result: &Value) -> Result<u64, ProbeAnswerError> {
        match result.get("height") {
            Some(h) => parse_height(h),
            None => Err(ProbeAnswerError("block without a height".into())),
        }
    }

    fn chain_id_call(&self) -> ProbeCall {
        NETWORK_INFO
    }

    fn parse_chain_id(&self, result: &Value) -> Result<String, ProbeAnswerError> {
        // The network info's `nid`; a bare T_INT is accepted too (how a
        // configured `chain_id = "0x1"` is checked).
        let nid = match result {
            Value::Object(info) => info
                .get("nid")
                .ok_or_else(|| ProbeAnswerError("network info without a nid".into()))?,
            other => other,
        };
        parse_int(nid).map(|n| n.to_string())
    }

    fn finalized_call(&self) -> Option<ProbeCall> {
        Some(NETWORK_INFO)
    }

    fn parse_finalized(&self, result: &Value) -> Result<Option<u64>, ProbeAnswerError> {
        match result.get("latest") {
            Some(latest) => parse_int(latest).map(Some),
            None => Ok(None),
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

    fn canonical_params(&self, _method: &str, params: Option<&RawValue>) -> Option<String> {
        cache::canonical_params(params)
    }

    fn path_route(&self, path: &str) -> Option<PathRoute> {
        // goloop's endpoints: `/api/v3`, `/api/v3/<channel>`, and the debug
        // API at `/api/v3d[/<channel>]`, sent to the same path on the node
        // (clients such as iconsdk only speak to these paths).
        let path = path.trim_end_matches('/');
        if path.is_empty() {
            return Some(PathRoute::DEFAULT);
        }
        let rest = path
            .strip_prefix("/api/v3d")
            .or_else(|| path.strip_prefix("/api/v3"))?;
        let channel_ok = match rest.strip_prefix('/') {
            None => rest.is_empty(),
            Some(channel) => {
                !channel.is_empty()
                    && channel.len() <= 64
                    && channel
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            }
        };
        channel_ok.then_some(PathRoute {
            archive: false,
            forward: true,
        })
    }

    fn method_class(&self, method: &str) -> MethodClass {
        if WRITES.contains(&method) {
            MethodClass::Write
        } else {
            MethodClass::Read
        }
    }

    fn metric_methods(&self) -> &'static [&'static str] {
        METRIC_METHODS
    }

    fn block_ref(&self, method: &str, params: Option<&RawValue>) -> Option<BlockRef> {
        if !AT_HEIGHT.contains(&method) && !AT_OPTIONAL_HEIGHT.contains(&method) {
            return None;
        }
        Some(match height_param(params)? {
            Some(n) => BlockRef::Number(n),
            None => BlockRef::Latest,
        })
    }

    fn is_already_known(&self, error: &RawValue) -> bool {
        let Some(m) = super::error_message(error) else {
            return false;
        };
        // goloop: "SystemError: DuplicateTransaction" (in the pool) and
        // "…CommittedTransaction" (already in a block).
        m.contains("duplicatetransaction") || m.contains("committedtransaction")
    }

    fn broadcastable(&self, method: &str) -> bool {
        // A signed transaction is the same transaction on every node; the
        // AndWait form holds the connection until a result and is not.
        method == "icx_sendTransaction"
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn reads_the_last_block_and_the_network_info() {
        let block = json!({"version": "2.0", "height": 81_512_345, "block_hash": "ab12",
            "prev_block_hash": "cd34", "time_stamp": 1_700_000_000_000_000u64});
        assert_eq!(Icon.parse_head(&block), Ok(81_512_345));
        assert!(
            Icon.parse_head(&json!({"height": "0x10"})).is_err(),
            "a number, not hex"
        );
        assert!(Icon.parse_head(&json!({"block_hash": "ab"})).is_err());
        let info = json!({"platform": "icon", "nid": "0x1", "channel": "icon_dex",
            "earliest": "0x0", "latest": "0x4dbc2a9", "stepPrice": "0x2e90edd00"});
        assert_eq!(Icon.parse_chain_id(&info), Ok("1".to_owned()));
        assert_eq!(Icon.parse_chain_id(&json!("0x01")), Ok("1".to_owned()));
        assert!(Icon.parse_chain_id(&json!({"channel": "x"})).is_err());
        assert_eq!(Icon.parse_finalized(&info), Ok(Some(0x4dbc2a9)));
        assert_eq!(Icon.parse_finalized(&json!({"nid": "0x1"})), Ok(None));
        assert!(Icon.parse_finalized(&json!({"latest": 5})).is_err());
        for call in [Icon.head_call(), Icon.chain_id_call()] {
            let v: Value = serde_json::from_str(call.body).unwrap();
            assert_eq!(v["method"], call.method);
        }
    }

    #[test]
    fn classifies_methods_and_finds_heights() {
        assert_eq!(Icon.method_class("icx_sendTransaction"), MethodClass::Write);
        assert_eq!(
            Icon.method_class("icx_sendTransactionAndWait"),
            MethodClass::Write
        );
        assert_eq!(Icon.method_class("icx_getBalance"), MethodClass::Read);
        assert_eq!(
            Icon.block_ref("icx_getBlockByHeight", Some(&raw(r#"{"height":"0x10"}"#))),
            Some(BlockRef::Number(16))
        );
        assert_eq!(
            Icon.block_ref("icx_getBalance", Some(&raw(r#"{"address":"hx01"}"#))),
            Some(BlockRef::Latest)
        );
        assert_eq!(
            Icon.block_ref("icx_getBalance", None),
            Some(BlockRef::Latest)
        );
        assert_eq!(
            Icon.block_ref("icx_getBalance", Some(&raw(r#"{"height":"ten"}"#))),
            None
        );
        assert_eq!(
            Icon.block_ref(
                "icx_getTransactionResult",
                Some(&raw(r#"{"txHash":"0x1"}"#))
            ),
            None
        );
    }

    #[test]
    fn goloop_paths_are_forwarded_and_nothing_else() {
        let forward = Some(PathRoute {
            archive: false,
            forward: true,
        });
        for path in [
            "/api/v3",
            "/api/v3/",
            "/api/v3/icon_dex",
            "/api/v3d",
            "/api/v3d/icon_dex",
            "/api/v3/a34",
        ] {
            assert_eq!(Icon.path_route(path), forward, "{path}");
        }
        assert_eq!(Icon.path_route(""), Some(PathRoute::DEFAULT));
        assert_eq!(Icon.path_route("/"), Some(PathRoute::DEFAULT));
        for path in [
            "/api",
            "/api/v2",
            "/api/v3x",
            "/api/v3/a/b",
            "/api/v3/../admin",
            "/archive",
            "/api/v3/a%20b",
        ] {
            assert_eq!(Icon.path_route(path), None, "{path}");
        }
    }

    #[test]
    fn recognises_a_transaction_the_node_already_has() {
        assert!(Icon.is_already_known(&raw(
            r#"{"code":-31000,"message":"SystemError: DuplicateTransaction"}"#
        )));
        assert!(Icon.is_already_known(&raw(
            r#"{"code":-31000,"message":"SystemError: CommittedTransaction(hash=0x1)"}"#
        )));
        assert!(!Icon.is_already_known(&raw(
            r#"{"code":-32602,"message":"InvalidParams: bad signature"}"#
        )));
        assert!(Icon.broadcastable("icx_sendTransaction"));
        assert!(!Icon.broadcastable("icx_sendTransactionAndWait"));
    }
}
