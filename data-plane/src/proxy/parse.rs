//! Phase: reading the JSON-RPC request, only as far as routing needs.
//!
//! What routing needs is each call's method (to classify it and count it)
//! and id (to echo in Meridian's own errors); `params` are skipped without
//! being built. Strings are borrowed from the body where they have no
//! escapes, and ids are kept as raw JSON text, so they come back byte for
//! byte. The body itself is forwarded unchanged.
//!
//! Refusals (all with `x-rejected-by: json`, none reaches an upstream):
//! - not JSON at all → -32700, **HTTP 400**: the body is not JSON-RPC, so an
//!   HTTP client error is the honest status, and clients that only look at
//!   the status still see the failure;
//! - JSON that is not a request (not an object, no string `method`,
//!   `jsonrpc` not "2.0") or an empty batch → -32600, HTTP 400. A batch is
//!   refused whole if any element is invalid; per-element answers arrive
//!   with the batch splitter;
//! - a batch longer than the network's `max_batch` → -32005, HTTP 413,
//!   `x-rejected-by: batch`.

use std::borrow::Cow;

use http::StatusCode;
use meridian_common::jsonrpc;
use serde::{Deserialize, Deserializer};
use serde_json::error::Category;
use serde_json::value::RawValue;

use super::reply::ErrorReply;

/// One call of a request.
#[derive(Debug)]
pub struct Call<'a> {
    pub method: Cow<'a, str>,
    /// Raw JSON of the id; `None` for a notification (no `id` member).
    /// `"id": null` is `Some("null")`, not a notification.
    pub id: Option<&'a RawValue>,
}

/// A request: one call or a batch.
#[derive(Debug)]
pub enum Parsed<'a> {
    Single(Call<'a>),
    Batch(Vec<Call<'a>>),
}

impl<'a> Parsed<'a> {
    /// Every call, in request order.
    pub fn calls(&self) -> &[Call<'a>] {
        match self {
            Self::Single(call) => std::slice::from_ref(call),
            Self::Batch(calls) => calls,
        }
    }

    /// The id to echo in an error about the whole request: a single call's
    /// id; `None` (→ `null`) for a batch.
    pub fn id(&self) -> Option<&'a RawValue> {
        match self {
            Self::Single(call) => call.id,
            Self::Batch(_) => None,
        }
    }

    /// The method for logs and spans: a single call's, or `batch`.
    pub fn label(&self) -> &str {
        match self {
            Self::Single(call) => &call.method,
            Self::Batch(_) => "batch",
        }
    }
}

#[derive(Deserialize)]
struct WireCall<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    // Not `Option<&RawValue>` alone: serde would read `null` as `None` and
    // turn `"id": null` into a notification.
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Parses `body`, refusing batches over `max_batch` calls.
pub fn parse(body: &[u8], max_batch: u32) -> Result<Parsed<'_>, ErrorReply> {
    let text = std::str::from_utf8(body).map_err(|_| malformed("request body is not UTF-8"))?;
    let first = text.bytes().find(|b| !b.is_ascii_whitespace());
    if first == Some(b'[') {
        let elements: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| refusal(&e))?;
        if elements.is_empty() {
            return Err(invalid("empty batch"));
        }
        if elements.len() > max_batch as usize {
            return Err(ErrorReply::rejected(
                StatusCode::PAYLOAD_TOO_LARGE,
                jsonrpc::LIMIT_EXCEEDED,
                "batch",
                format!(
                    "batch of {} calls is over this network's limit of {max_batch}",
                    elements.len()
                ),
            ));
        }
        let mut calls = Vec::with_capacity(elements.len());
        for (i, element) in elements.into_iter().enumerate() {
            let call = call(element.get()).map_err(|e| {
                let mut e = e;
                e.message = format!("batch element {i}: {}", e.message);
                e
            })?;
            calls.push(call);
        }
        Ok(Parsed::Batch(calls))
    } else {
        call(text).map(Parsed::Single)
    }
}

fn call(text: &str) -> Result<Call<'_>, ErrorReply> {
    let wire: WireCall<'_> = serde_json::from_str(text).map_err(|e| refusal(&e))?;
    let id = wire.id;
    let fail = |msg: &str| invalid(msg).with_id(id);
    match wire.jsonrpc.as_deref() {
        Some("2.0") => {}
        Some(_) => return Err(fail("\"jsonrpc\" must be \"2.0\"")),
        None => return Err(fail("missing \"jsonrpc\": \"2.0\"")),
    }
    let method = wire.method.ok_or_else(|| fail("missing \"method\""))?;
    Ok(Call { method, id })
}

/// A serde error as -32700 (not JSON) or -32600 (JSON, but not a request).
fn refusal(e: &serde_json::Error) -> ErrorReply {
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => malformed(&format!("parse error: {e}")),
        Category::Data => invalid(&format!("not a JSON-RPC request: {e}")),
    }
}

fn malformed(msg: &str) -> ErrorReply {
    ErrorReply::rejected(StatusCode::BAD_REQUEST, jsonrpc::PARSE_ERROR, "json", msg)
}

fn invalid(msg: &str) -> ErrorReply {
    ErrorReply::rejected(
        StatusCode::BAD_REQUEST,
        jsonrpc::INVALID_REQUEST,
        "json",
        msg,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> Vec<(String, Option<String>)> {
        parse(body.as_bytes(), 100)
            .unwrap()
            .calls()
            .iter()
            .map(|c| (c.method.to_string(), c.id.map(|id| id.get().to_owned())))
            .collect()
    }

    fn err(body: &str) -> ErrorReply {
        parse(body.as_bytes(), 3).unwrap_err()
    }

    #[test]
    fn reads_methods_and_raw_ids() {
        assert_eq!(
            ok(
                r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"eth_call","params":[{"to":"0x0"},"latest"]}"#
            ),
            vec![(
                "eth_call".into(),
                Some("123456789012345678901234567890".into())
            )]
        );
        assert_eq!(
            ok(r#" {"method":"eth_chainId","id":"a\"b","jsonrpc":"2.0"} "#),
            vec![("eth_chainId".into(), Some(r#""a\"b""#.into()))]
        );
        // A notification has no id; `null` is an id.
        assert_eq!(
            ok(r#"[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"b","id":null}]"#),
            vec![("a".into(), None), ("b".into(), Some("null".into()))]
        );
        // Escaped method names are decoded.
        assert_eq!(
            ok(r#"{"jsonrpc":"2.0","id":1,"method":"eth\u005fcall"}"#)[0].0,
            "eth_call"
        );
    }

    #[test]
    fn malformed_json_is_a_parse_error() {
        for body in [
            "",
            "{",
            r#"{"jsonrpc":"2.0","method":"x","id":1"#,
            "[1,]",
            "{} {}",
            "\u{0}",
        ] {
            let e = err(body);
            assert_eq!(e.code, jsonrpc::PARSE_ERROR, "{body:?}: {}", e.message);
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert_eq!(e.rejected_by, Some("json"));
            assert!(e.id.is_none());
        }
        assert_eq!(
            parse(b"\xff\xfe", 3).unwrap_err().code,
            jsonrpc::PARSE_ERROR
        );
    }

    #[test]
    fn json_that_is_not_a_request_is_invalid() {
        for body in [
            "5",
            r#""eth_call""#,
            "[]",
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#,
            r#"{"id":1,"method":"x"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
            r#"[{"jsonrpc":"2.0","id":1,"method":"x"}, 1]"#,
        ] {
            let e = err(body);
            assert_eq!(e.code, jsonrpc::INVALID_REQUEST, "{body:?}: {}", e.message);
            assert_eq!(e.rejected_by, Some("json"));
        }
        // The id is echoed when it could be read.
        let e = err(r#"{"jsonrpc":"2.0","id":"x-1"}"#);
        assert_eq!(e.id.unwrap().get(), r#""x-1""#);
    }

    #[test]
    fn batches_over_the_limit_are_refused_whole() {
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"x"}"#;
        let body = format!("[{call},{call},{call},{call}]");
        let e = err(&body);
        assert_eq!(e.code, jsonrpc::LIMIT_EXCEEDED);
        assert_eq!(e.rejected_by, Some("batch"));
        assert!(parse(format!("[{call},{call},{call}]").as_bytes(), 3).is_ok());
    }
}
