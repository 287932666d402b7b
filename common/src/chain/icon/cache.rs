//! ICON cache rules: the class of each call, the block an answer belongs
//! to, and the canonical form of params for cache keys.
//!
//! As for EVM, anything not known to be safe is [`CacheClass::Never`]:
//! writes, `icx_waitTransactionResult` (it blocks until a result), the
//! debug and BTP methods, proofs, unknown methods.

use serde_json::Value;
use serde_json::value::RawValue;

use super::{AT_HEIGHT, AT_OPTIONAL_HEIGHT, height_param};
use crate::chain::CacheClass;
use crate::chain::hex::{canonical_quantity, lower_hex, parse_quantity};

/// Content named by its own hash: the same on every node for ever.
const STATIC: &[&str] = &["icx_getDataByHash"];

/// Follow the last block whatever their params.
const HEAD: &[&str] = &["icx_getLastBlock", "icx_getNetworkInfo"];

/// Name a block or a transaction by hash.
const BY_HASH: &[&str] = &[
    "icx_getBlockByHash",
    "icx_getTransactionByHash",
    "icx_getTransactionResult",
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
    let optional = AT_OPTIONAL_HEIGHT.contains(&method);
    if !optional && !AT_HEIGHT.contains(&method) {
        return CacheClass::Never;
    }
    match height_param(params) {
        Some(Some(height)) => CacheClass::AtHeight(height),
        // Without a height: at the last block.
        Some(None) if optional => CacheClass::Head,
        _ => CacheClass::Never,
    }
}

/// A block's `height` (a JSON number), or a transaction's or result's
/// `blockHeight` (a T_INT).
pub(super) fn answer_block(result: &RawValue) -> Option<u64> {
    let v: Value = serde_json::from_str(result.get()).ok()?;
    let o = v.as_object()?;
    match (o.get("blockHeight"), o.get("height")) {
        (Some(h), _) => parse_quantity(h).ok(),
        (None, Some(h)) => h.as_u64(),
        (None, None) => None,
    }
}

/// A block's `height` and `block_hash`, or a result's `blockHeight` and
/// `blockHash`; the hash lower-cased without `0x` (blocks write it bare,
/// results with the prefix).
pub(super) fn answer_block_hash(result: &RawValue) -> Option<(u64, String)> {
    #[derive(serde::Deserialize)]
    struct Shown<'a> {
        height: Option<u64>,
        block_hash: Option<&'a str>,
        #[serde(rename = "blockHeight")]
        result_height: Option<&'a str>,
        #[serde(rename = "blockHash")]
        result_hash: Option<&'a str>,
    }
    let shown: Shown<'_> = serde_json::from_str(result.get()).ok()?;
    let (height, hash) = match (shown.result_height, shown.result_hash) {
        (Some(h), Some(hash)) => (parse_quantity(&Value::String(h.to_owned())).ok()?, hash),
        _ => (shown.height?, shown.block_hash?),
    };
    let hash = hash.strip_prefix("0x").unwrap_or(hash).to_ascii_lowercase();
    Some((height, hash))
}

/// The params object with its keys sorted (`serde_json` keeps them in a
/// sorted map), hex lower-cased, a `height` without leading zeros, no
/// whitespace; omitted params are `{}`.
pub(super) fn canonical_params(params: Option<&RawValue>) -> Option<String> {
    let Some(params) = params else {
        return Some("{}".to_owned());
    };
    let mut value: Value = serde_json::from_str(params.get()).ok()?;
    lower_hex(&mut value);
    if let Some(height) = value.as_object_mut().and_then(|o| o.get_mut("height")) {
        canonical_quantity(height);
    }
    serde_json::to_string(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn classes_follow_what_the_call_names() {
        use CacheClass::*;
        for (method, params, want) in [
            ("icx_getLastBlock", None, Head),
            ("icx_getNetworkInfo", None, Head),
            (
                "icx_getBlockByHeight",
                Some(r#"{"height":"0x64"}"#),
                AtHeight(100),
            ),
            ("icx_getBlockByHeight", None, Never),
            ("icx_getBlockByHeight", Some(r#"{"height":100}"#), Never),
            ("icx_getBalance", Some(r#"{"address":"hx01"}"#), Head),
            (
                "icx_getBalance",
                Some(r#"{"address":"hx01","height":"0xa"}"#),
                AtHeight(10),
            ),
            (
                "icx_call",
                Some(r#"{"to":"cx00","dataType":"call","data":{}}"#),
                Head,
            ),
            ("icx_getTotalSupply", None, Head),
            ("icx_getBlockByHash", Some(r#"{"hash":"0xab"}"#), ByHash),
            (
                "icx_getTransactionResult",
                Some(r#"{"txHash":"0xab"}"#),
                ByHash,
            ),
            ("icx_getDataByHash", Some(r#"{"hash":"0xab"}"#), Static),
            ("icx_sendTransaction", Some(r#"{"version":"0x3"}"#), Never),
            (
                "icx_waitTransactionResult",
                Some(r#"{"txHash":"0xab"}"#),
                Never,
            ),
            ("debug_getTrace", Some(r#"{"txHash":"0xab"}"#), Never),
            ("icx_unknown", None, Never),
        ] {
            let params = params.map(raw);
            assert_eq!(
                class(method, params.as_deref()),
                want,
                "{method} {params:?}"
            );
        }
    }

    #[test]
    fn the_block_an_answer_belongs_to() {
        let block =
            raw(r#"{"height":81512345,"block_hash":"AB12","confirmed_transaction_list":[]}"#);
        assert_eq!(answer_block(&block), Some(81_512_345));
        assert_eq!(
            answer_block_hash(&block),
            Some((81_512_345, "ab12".to_owned()))
        );
        let result =
            raw(r#"{"status":"0x1","blockHeight":"0x10","blockHash":"0xCD34","txHash":"0xef"}"#);
        assert_eq!(answer_block(&result), Some(16));
        assert_eq!(answer_block_hash(&result), Some((16, "cd34".to_owned())));
        for none in [
            r#""0x1""#,
            "null",
            r#"{"status":"0x1"}"#,
            r#"[{"height":1}]"#,
        ] {
            assert_eq!(answer_block(&raw(none)), None, "{none}");
        }
    }

    #[test]
    fn params_meaning_the_same_share_a_key() {
        let a = canonical_params(Some(&raw(r#"{"height":"0x0A","address":"hxAB"}"#)));
        let b = canonical_params(Some(&raw(r#"{ "address": "hxAB", "height": "0xa" }"#)));
        assert_eq!(a, b);
        assert_eq!(a.as_deref(), Some(r#"{"address":"hxAB","height":"0xa"}"#));
        assert_eq!(
            canonical_params(Some(&raw(r#"{"hash":"0xABCD"}"#))).as_deref(),
            Some(r#"{"hash":"0xabcd"}"#)
        );
        assert_eq!(canonical_params(None).as_deref(), Some("{}"));
    }
}
