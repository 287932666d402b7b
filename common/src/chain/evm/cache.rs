//! EVM cache rules: the class of each call, the block an answer belongs
//! to, and the canonical form of params for cache keys.
//!
//! The class decides what "fresh" means for an answer; getting it wrong
//! serves stale data, so anything not known to be safe is
//! [`CacheClass::Never`]. Node-specific answers (`web3_clientVersion`,
//! `eth_syncing`, traces whose format differs by client) are never cached:
//! two upstreams may rightly answer them differently.

use serde_json::Value;
use serde_json::value::RawValue;

use super::{block_param_index, parse_block};
use crate::chain::hex::{canonical_quantity, lower_hex, parse_quantity};
use crate::chain::{BlockRef, CacheClass};

/// Never change for a network.
const STATIC: &[&str] = &["eth_chainId", "net_version"];

/// Follow the head whatever their params.
const HEAD: &[&str] = &[
    "eth_blockNumber",
    "eth_gasPrice",
    "eth_maxPriorityFeePerGas",
    "eth_blobBaseFee",
    "eth_feeHistory",
];

/// Name a block or a transaction by hash in their first param.
const BY_HASH: &[&str] = &[
    "eth_getBlockByHash",
    "eth_getTransactionByHash",
    "eth_getTransactionReceipt",
    "eth_getBlockTransactionCountByHash",
    "eth_getTransactionByBlockHashAndIndex",
    "eth_getUncleByBlockHashAndIndex",
    "eth_getUncleCountByBlockHash",
];

/// Read-only calls that name a block (see `block_param_index`) and whose
/// answer is the same on every node at that block. `eth_estimateGas` is
/// left out: nodes estimate differently.
const AT_BLOCK: &[&str] = &[
    "eth_getBlockByNumber",
    "eth_getBlockTransactionCountByNumber",
    "eth_getUncleCountByBlockNumber",
    "eth_getTransactionByBlockNumberAndIndex",
    "eth_getUncleByBlockNumberAndIndex",
    "eth_getBlockReceipts",
    "eth_getBalance",
    "eth_getCode",
    "eth_getTransactionCount",
    "eth_call",
    "eth_getStorageAt",
    "eth_getProof",
];

/// The class of `method` with `params`.
pub(super) fn class(method: &str, params: Option<&RawValue>) -> CacheClass {
    if STATIC.contains(&method) {
        return CacheClass::Static;
    }
    if HEAD.contains(&method) {
        return CacheClass::Head;
    }
    if BY_HASH.contains(&method) {
        return CacheClass::ByHash;
    }
    let Some(params) = params.and_then(|p| serde_json::from_str::<Vec<Value>>(p.get()).ok()) else {
        return CacheClass::Never;
    };
    if method == "eth_getLogs" {
        return logs_class(&params);
    }
    if !AT_BLOCK.contains(&method) {
        return CacheClass::Never;
    }
    let Some(index) = block_param_index(method) else {
        return CacheClass::Never;
    };
    match params.get(index) {
        // An omitted optional block parameter means "latest".
        None => CacheClass::Head,
        Some(Value::Object(o)) if o.contains_key("blockHash") => CacheClass::ByHash,
        Some(block) => block_class(parse_block(block)),
    }
}

fn block_class(block: Option<BlockRef>) -> CacheClass {
    match block {
        Some(BlockRef::Number(n)) => CacheClass::AtHeight(n),
        Some(BlockRef::Earliest) => CacheClass::AtHeight(0),
        Some(BlockRef::Latest | BlockRef::Safe | BlockRef::Finalized) => CacheClass::Head,
        Some(BlockRef::Pending) | None => CacheClass::Never,
    }
}

/// `eth_getLogs`: a closed numeric range is as old as its end; a block
/// hash is by hash; anything reaching `latest` follows the head;
/// `pending` (or a filter that cannot be read) is never cached.
fn logs_class(params: &[Value]) -> CacheClass {
    let Some(filter) = params.first().and_then(Value::as_object) else {
        return CacheClass::Never;
    };
    if filter.contains_key("blockHash") {
        return CacheClass::ByHash;
    }
    let end = |key: &str| match filter.get(key) {
        None => Some(BlockRef::Latest),
        Some(v) => parse_block(v),
    };
    match (end("fromBlock"), end("toBlock")) {
        (Some(BlockRef::Pending), _) | (_, Some(BlockRef::Pending)) | (None, _) | (_, None) => {
            CacheClass::Never
        }
        (_, Some(to)) => block_class(Some(to)),
    }
}

/// The block an answer belongs to: a block's `number`, a transaction's or
/// receipt's `blockNumber`, the highest `blockNumber` of a list (logs,
/// receipts). A pending transaction (`blockNumber: null`), `null` or an
/// empty list name none.
pub(super) fn answer_block(result: &RawValue) -> Option<u64> {
    fn of(v: &Value) -> Option<u64> {
        match v {
            Value::Object(o) => o
                .get("blockNumber")
                .or_else(|| o.get("number"))
                .and_then(|n| parse_quantity(n).ok()),
            Value::Array(items) => items
                .iter()
                .map(of)
                .collect::<Option<Vec<_>>>()?
                .into_iter()
                .max(),
            _ => None,
        }
    }
    of(&serde_json::from_str(result.get()).ok()?)
}

/// A block's `number` and `hash`, or a transaction's or receipt's
/// `blockNumber` and `blockHash` (hash lower-cased); lists show several
/// blocks and give `None`.
pub(super) fn answer_block_hash(result: &RawValue) -> Option<(u64, String)> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Shown<'a> {
        number: Option<&'a str>,
        hash: Option<&'a str>,
        block_number: Option<&'a str>,
        block_hash: Option<&'a str>,
    }
    let shown: Shown<'_> = serde_json::from_str(result.get()).ok()?;
    let (number, hash) = match (shown.block_number, shown.block_hash) {
        (Some(n), Some(h)) => (n, h),
        _ => (shown.number?, shown.hash?),
    };
    let number = parse_quantity(&Value::String(number.to_owned())).ok()?;
    Some((number, hash.to_ascii_lowercase()))
}

/// Params in canonical form: hex strings lower-cased (hex is
/// case-insensitive in EVM JSON-RPC: addresses, hashes, data), block
/// numbers without leading zeros, object keys sorted (`serde_json` keeps
/// them in a sorted map), no whitespace. Omitted params are `[]`.
pub(super) fn canonical_params(method: &str, params: Option<&RawValue>) -> Option<String> {
    let Some(params) = params else {
        return Some("[]".to_owned());
    };
    let mut value: Value = serde_json::from_str(params.get()).ok()?;
    lower_hex(&mut value);
    if let Value::Array(items) = &mut value {
        if method == "eth_getLogs" {
            if let Some(Value::Object(filter)) = items.first_mut() {
                for key in ["fromBlock", "toBlock"] {
                    if let Some(v) = filter.get_mut(key) {
                        canonical_quantity(v);
                    }
                }
            }
        } else if let Some(v) = block_param_index(method).and_then(|i| items.get_mut(i)) {
            match v {
                Value::Object(o) => {
                    if let Some(n) = o.get_mut("blockNumber") {
                        canonical_quantity(n);
                    }
                }
                v => canonical_quantity(v),
            }
        }
    }
    serde_json::to_string(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    fn class_of(method: &str, params: &str) -> CacheClass {
        class(method, Some(&raw(params)))
    }

    #[test]
    fn the_block_an_answer_shows_for_reorg_detection() {
        assert_eq!(
            answer_block_hash(&raw(r#"{"number":"0x10","hash":"0xAB","transactions":[]}"#)),
            Some((16, "0xab".to_owned()))
        );
        assert_eq!(
            answer_block_hash(&raw(
                r#"{"blockNumber":"0x11","blockHash":"0xcd","hash":"0xtx","status":"0x1"}"#
            )),
            Some((17, "0xcd".to_owned())),
            "a transaction's block, not its own hash"
        );
        for none in [
            r#""0x1""#,
            "null",
            r#"[{"blockNumber":"0x1","blockHash":"0x2"}]"#,
            r#"{"number":"0x1"}"#,
        ] {
            assert_eq!(answer_block_hash(&raw(none)), None, "{none}");
        }
    }

    #[test]
    fn classes_follow_what_the_call_names() {
        use CacheClass::*;
        let addr = r#""0x00000000000000000000000000000000000000aa""#;
        for (method, params, want) in [
            ("eth_chainId", "[]", Static),
            ("net_version", "[]", Static),
            ("eth_blockNumber", "[]", Head),
            ("eth_gasPrice", "[]", Head),
            ("eth_feeHistory", r#"["0x4","latest",[]]"#, Head),
            ("eth_getBalance", &format!("[{addr},\"latest\"]"), Head),
            ("eth_getBalance", &format!("[{addr}]"), Head),
            ("eth_getBalance", &format!("[{addr},\"finalized\"]"), Head),
            (
                "eth_getBalance",
                &format!("[{addr},\"0x10\"]"),
                AtHeight(16),
            ),
            (
                "eth_getBalance",
                &format!("[{addr},\"earliest\"]"),
                AtHeight(0),
            ),
            ("eth_getBalance", &format!("[{addr},\"pending\"]"), Never),
            (
                "eth_getBalance",
                &format!("[{addr},{{\"blockNumber\":\"0x20\"}}]"),
                AtHeight(32),
            ),
            (
                "eth_getBalance",
                &format!("[{addr},{{\"blockHash\":\"0xab\"}}]"),
                ByHash,
            ),
            ("eth_getBlockByNumber", r#"["0x64",false]"#, AtHeight(100)),
            ("eth_getBlockByNumber", r#"["latest",false]"#, Head),
            ("eth_getBlockByNumber", r#"["pending",false]"#, Never),
            ("eth_getBlockByHash", r#"["0xab",false]"#, ByHash),
            ("eth_getTransactionReceipt", r#"["0xab"]"#, ByHash),
            (
                "eth_call",
                r#"[{"to":"0xaa","data":"0x"},"0x5"]"#,
                AtHeight(5),
            ),
            (
                "eth_getLogs",
                r#"[{"fromBlock":"0x1","toBlock":"0x9"}]"#,
                AtHeight(9),
            ),
            ("eth_getLogs", r#"[{"fromBlock":"0x1"}]"#, Head),
            (
                "eth_getLogs",
                r#"[{"fromBlock":"0x1","toBlock":"pending"}]"#,
                Never,
            ),
            ("eth_getLogs", r#"[{"blockHash":"0xab"}]"#, ByHash),
            ("eth_getLogs", r#"["nonsense"]"#, Never),
            ("eth_sendRawTransaction", r#"["0xf8"]"#, Never),
            ("eth_newFilter", r#"[{}]"#, Never),
            ("eth_getFilterChanges", r#"["0x1"]"#, Never),
            ("eth_subscribe", r#"["newHeads"]"#, Never),
            ("eth_estimateGas", r#"[{"to":"0xaa"},"0x5"]"#, Never),
            ("web3_clientVersion", "[]", Never),
            ("eth_syncing", "[]", Never),
            ("debug_traceTransaction", r#"["0xab"]"#, Never),
            ("no_suchMethod", "[]", Never),
            ("eth_getBalance", r#"{"not":"a list"}"#, Never),
        ] {
            assert_eq!(class_of(method, params), want, "{method} {params}");
        }
        assert_eq!(
            class("eth_getBalance", None),
            CacheClass::Never,
            "no params at all"
        );
        assert_eq!(class("eth_chainId", None), CacheClass::Static);
    }

    #[test]
    fn answers_name_their_block() {
        for (result, want) in [
            (r#"{"number":"0x10","hash":"0xab"}"#, Some(16)),
            (
                r#"{"blockNumber":"0x11","transactionHash":"0xab"}"#,
                Some(17),
            ),
            (r#"{"blockNumber":null}"#, None),
            (r#"[{"blockNumber":"0x3"},{"blockNumber":"0x7"}]"#, Some(7)),
            (r#"[{"blockNumber":"0x3"},{"blockNumber":null}]"#, None),
            ("[]", None),
            ("null", None),
            (r#""0x10""#, None),
        ] {
            assert_eq!(answer_block(&raw(result)), want, "{result}");
        }
    }

    #[test]
    fn params_that_mean_the_same_have_one_form() {
        let a = canonical_params(
            "eth_getBalance",
            Some(&raw(
                r#"[ "0x00000000000000000000000000000000000000AA", "0x0010" ]"#,
            )),
        );
        let b = canonical_params(
            "eth_getBalance",
            Some(&raw(
                r#"["0x00000000000000000000000000000000000000aa","0x10"]"#,
            )),
        );
        assert_eq!(a, b);
        assert_eq!(
            b.as_deref(),
            Some(r#"["0x00000000000000000000000000000000000000aa","0x10"]"#)
        );
        let call = |p: &str| canonical_params("eth_call", Some(&raw(p)));
        assert_eq!(
            call(r#"[{"to":"0xAA","data":"0x00"},"latest"]"#),
            call(r#"[{"data":"0x00","to":"0xaa"},"latest"]"#),
            "key order and hex case do not matter"
        );
        assert_ne!(
            call(r#"[{"to":"0xaa","data":"0x00"},"latest"]"#),
            call(r#"[{"to":"0xaa","data":"0x0000"},"latest"]"#),
            "data keeps its leading zeros: it is bytes, not a number"
        );
        assert_eq!(
            canonical_params(
                "eth_getLogs",
                Some(&raw(r#"[{"toBlock":"0x09","fromBlock":"0x01"}]"#))
            ),
            Some(r#"[{"fromBlock":"0x1","toBlock":"0x9"}]"#.to_owned())
        );
        assert_eq!(canonical_params("eth_chainId", None).as_deref(), Some("[]"));
        assert_eq!(
            canonical_params("eth_getBalance", Some(&raw(r#"["0xaa","Latest"]"#))).as_deref(),
            Some(r#"["0xaa","Latest"]"#),
            "a tag is kept as sent (a node refuses a wrong one)"
        );
    }
}
