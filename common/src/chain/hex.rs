//! `0x`-prefixed hex numbers and strings, as EVM (QUANTITY) and ICON
//! (T_INT) write them: parsing, and the canonical forms of cache keys.

use serde_json::Value;

use super::ProbeAnswerError;

/// Parses a `0x`-prefixed hex number (leading zeros and upper case
/// accepted: nodes and clients differ) of at most 64 bits, which is enough
/// for heights and chain ids.
pub(crate) fn parse_quantity(v: &Value) -> Result<u64, ProbeAnswerError> {
    let s = v
        .as_str()
        .ok_or_else(|| ProbeAnswerError(format!("expected a hex quantity, got {v}")))?;
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or_else(|| ProbeAnswerError(format!("quantity {s:?} lacks the 0x prefix")))?;
    if digits.is_empty() || digits.len() > 16 {
        return Err(ProbeAnswerError(format!(
            "quantity {s:?} is empty or over 64 bits"
        )));
    }
    u64::from_str_radix(digits, 16)
        .map_err(|_| ProbeAnswerError(format!("quantity {s:?} is not hex")))
}

/// `"0x"`-prefixed strings of hex digits to lower case, everywhere (hex is
/// case-insensitive in both chains' JSON-RPC: addresses, hashes, data).
pub(crate) fn lower_hex(v: &mut Value) {
    match v {
        Value::String(s) => {
            let hex = s.len() > 2
                && (s.starts_with("0x") || s.starts_with("0X"))
                && s.as_bytes()[2..].iter().all(u8::is_ascii_hexdigit);
            if hex {
                s.make_ascii_lowercase();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(lower_hex),
        Value::Object(o) => o.values_mut().for_each(lower_hex),
        _ => {}
    }
}

/// A hex number without leading zeros (`"0x00a"` → `"0xa"`); tags and
/// anything else stay as they are.
pub(crate) fn canonical_quantity(v: &mut Value) {
    if let Ok(n) = parse_quantity(v) {
        *v = Value::String(format!("{n:#x}"));
    }
}
