//! JSON-RPC 2.0 error codes and error bodies Meridian itself produces.
//!
//! Parsing of client requests belongs to the data plane's request path; this
//! module holds only what both planes (and tests) must spell the same way.

use std::sync::LazyLock;

use serde::Serialize;
use serde_json::value::RawValue;

/// Invalid JSON was received.
pub const PARSE_ERROR: i64 = -32700;
/// The JSON sent is not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist or is not available.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// Internal JSON-RPC error.
pub const INTERNAL_ERROR: i64 = -32603;
/// Resource unavailable (EIP-1474): no upstream could serve the request.
pub const RESOURCE_UNAVAILABLE: i64 = -32002;
/// Limit exceeded (EIP-1474): body, batch or queue limits.
pub const LIMIT_EXCEEDED: i64 = -32005;

#[derive(Serialize)]
struct ErrorBody<'a> {
    jsonrpc: &'static str,
    id: &'a RawValue,
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    code: i64,
    message: &'a str,
}

/// The JSON literal `null`, as a raw id.
pub fn null_id() -> &'static RawValue {
    // `Box<RawValue>::default()` is serde_json's `null`.
    static NULL: LazyLock<Box<RawValue>> = LazyLock::new(Box::default);
    &NULL
}

/// A complete JSON-RPC error response. `id` is echoed byte for byte;
/// `None` means `null` (the request's id could not be read).
pub fn error_response(id: Option<&RawValue>, code: i64, message: &str) -> Vec<u8> {
    let id: &RawValue = match id {
        Some(id) => id,
        None => null_id(),
    };
    let body = ErrorBody {
        jsonrpc: "2.0",
        id,
        error: ErrorObject { code, message },
    };
    // Serialising plain strings and numbers cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_ids_verbatim() {
        let id: Box<RawValue> =
            RawValue::from_string("123456789012345678901234567890".into()).unwrap();
        let body = error_response(Some(&id), PARSE_ERROR, "bad \"json\"");
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"error":{"code":-32700,"message":"bad \"json\""}}"#
        );
        let body = error_response(None, INVALID_REQUEST, "x");
        assert!(std::str::from_utf8(&body).unwrap().contains(r#""id":null"#));
    }
}
