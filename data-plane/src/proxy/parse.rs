//! Phase: reading the JSON-RPC request, only as far as routing needs.
//!
//! What routing needs is each call's method (to classify it, check the
//! method policy and count it, and as raw text to send it on), its id (to
//! echo), and its params (to find the block a read names, and to send them
//! on). Strings are borrowed from the body where they have no escapes, ids
//! and params are kept as raw JSON text, so ids come back byte for byte.
//! What goes upstream is written anew with Meridian's own ids
//! ([`super::outbound`]).
//!
//! Refusals of the whole request (all with `x-rejected-by: json`, none
//! reaches an upstream):
//! - not JSON at all (including a batch that is not valid JSON) → -32700,
//!   **HTTP 400**, `id: null`;
//! - a single call that is not a request object → -32600, HTTP 400, its id
//!   when it could be read, else `null`;
//! - an empty batch `[]` → one -32600 error with `id: null`, HTTP 400;
//! - a batch longer than the network's `max_batch` → -32005, HTTP 413,
//!   `x-rejected-by: batch`.
//!
//! Inside a batch, an element that is not a request (`1`, `{"foo":"boo"}`)
//! is not fatal: it becomes an [`Element::Invalid`] answered with its own
//! -32600 entry while the other elements are served.
//!
//! A request object is: an object with `"jsonrpc": "2.0"`, a string
//! `method`, an optional `id` that is a string, a number or `null` (absent:
//! a notification; `null` is an id), and optional `params` that is an
//! array or an object (`null` is tolerated because widespread EVM client
//! libraries send it).

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
    /// Raw JSON of the method string, as the client wrote it (escapes
    /// kept): what goes upstream ([`super::outbound`]).
    pub method_json: &'a RawValue,
    /// Raw JSON of the id; `None` for a notification (no `id` member).
    /// `"id": null` is `Some("null")`, not a notification.
    pub id: Option<&'a RawValue>,
    /// Raw JSON of the params, if any.
    pub params: Option<&'a RawValue>,
    /// The call's own JSON text, exactly as sent.
    pub raw: &'a str,
}

impl Call<'_> {
    /// A notification expects no answer.
    pub fn is_notification(&self) -> bool {
        self.id.is_none()
    }
}

/// A batch element that is not a valid request.
#[derive(Debug)]
pub struct Invalid<'a> {
    /// Its id, when it could be read and is a valid id.
    pub id: Option<&'a RawValue>,
    pub message: String,
}

/// One element of a batch.
#[derive(Debug)]
pub enum Element<'a> {
    Call(Call<'a>),
    Invalid(Invalid<'a>),
}

impl<'a> Element<'a> {
    /// The call, when the element is one.
    pub fn call(&self) -> Option<&Call<'a>> {
        match self {
            Self::Call(c) => Some(c),
            Self::Invalid(_) => None,
        }
    }
}

/// A request: one call or a batch.
#[derive(Debug)]
pub enum Parsed<'a> {
    Single(Call<'a>),
    Batch(Vec<Element<'a>>),
}

impl<'a> Parsed<'a> {
    /// Every valid call, in request order.
    pub fn calls(&self) -> impl Iterator<Item = &Call<'a>> {
        let (single, batch) = match self {
            Self::Single(call) => (Some(call), None),
            Self::Batch(elements) => (None, Some(elements.iter().filter_map(Element::call))),
        };
        single.into_iter().chain(batch.into_iter().flatten())
    }

    /// Elements of the request (1 for a single call).
    pub fn len(&self) -> usize {
        match self {
            Self::Single(_) => 1,
            Self::Batch(elements) => elements.len(),
        }
    }

    /// Never true: an empty batch is refused by [`parse`].
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<&'a RawValue>,
    // Not `Option<&RawValue>` alone: serde would read `null` as `None` and
    // turn `"id": null` into a notification.
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
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
        let elements = elements
            .into_iter()
            .enumerate()
            .map(|(i, element)| match call(element.get()) {
                Ok(call) => Element::Call(call),
                Err(e) => Element::Invalid(Invalid {
                    id: e.id,
                    message: format!("batch element {i}: {}", e.message),
                }),
            })
            .collect();
        Ok(Parsed::Batch(elements))
    } else {
        if first == Some(b'{')
            && let Ok(wire) = serde_json::from_str::<WireCall<'_>>(text)
        {
            // One pass for the common case: the object read straight into
            // its members, which validates the whole text as it goes. Any
            // error takes the two-pass path below instead, which tells
            // -32700 from -32600 exactly (reading into members also decodes
            // the keys, so a lone surrogate in a key, valid JSON grammar,
            // fails here as a syntax error).
            let raw = text.trim_matches(JSON_WHITESPACE);
            return checked(wire, raw)
                .map(Parsed::Single)
                .map_err(|e| invalid(&e.message).with_id(e.id));
        }
        let single = serde_json::from_str::<&RawValue>(text).map_err(|e| refusal(&e))?;
        call(single.get())
            .map(Parsed::Single)
            .map_err(|e| invalid(&e.message).with_id(e.id))
    }
}

/// JSON's insignificant whitespace (RFC 8259 §2).
const JSON_WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// Why one call is not a request, and its id when readable.
struct NotACall<'a> {
    id: Option<&'a RawValue>,
    message: String,
}

fn call(text: &str) -> Result<Call<'_>, NotACall<'_>> {
    let wire: WireCall<'_> = serde_json::from_str(text).map_err(|e| NotACall {
        id: None,
        message: format!("not a JSON-RPC request: {e}"),
    })?;
    checked(wire, text)
}

/// The call `wire` (read from `text`) is, if it is a request.
fn checked<'a>(wire: WireCall<'a>, text: &'a str) -> Result<Call<'a>, NotACall<'a>> {
    // An id that is not a string, number or null cannot be echoed.
    let id = wire.id.filter(|id| valid_id(id));
    let fail = |message: &str| NotACall {
        id,
        message: message.to_owned(),
    };
    if wire.id.is_some() && id.is_none() {
        return Err(fail("\"id\" must be a string, a number or null"));
    }
    match wire.jsonrpc.map(string) {
        Some(Ok(v)) if v == "2.0" => {}
        Some(_) => return Err(fail("\"jsonrpc\" must be \"2.0\"")),
        None => return Err(fail("missing \"jsonrpc\": \"2.0\"")),
    }
    let Some(method_json) = wire.method else {
        return Err(fail("missing \"method\""));
    };
    let Ok(method) = string(method_json) else {
        return Err(fail("\"method\" must be a string"));
    };
    if let Some(params) = wire.params
        && !matches!(params.get().as_bytes().first(), Some(b'[' | b'{' | b'n'))
    {
        return Err(fail("\"params\" must be an array or an object"));
    }
    Ok(Call {
        method,
        method_json,
        id,
        params: wire.params,
        raw: text,
    })
}

/// A JSON string value's text: borrowed as it is when it has no escapes
/// (the scan that produced `raw` has validated it), decoded otherwise.
fn string(raw: &RawValue) -> Result<Cow<'_, str>, serde_json::Error> {
    let text = raw.get();
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) if !inner.contains('\\') => Ok(Cow::Borrowed(inner)),
        _ => serde_json::from_str(text),
    }
}

fn valid_id(id: &RawValue) -> bool {
    matches!(
        id.get().as_bytes().first(),
        Some(b'"' | b'-' | b'0'..=b'9' | b'n')
    )
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
            // A repeated member before the syntax error: still not JSON.
            r#"{"id":1,"id":2,"method":"x" oops"#,
            r#"{"jsonrpc":"2.0","method":"x","id":1} trailing"#,
            r#"{"jsonrpc":"2.0","method":"x","params":[01]}"#,
            r#"{"jsonrpc":"2.0","method":"x\q"}"#,
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
    fn a_lone_surrogate_in_a_key_is_json_but_not_a_request() {
        for body in [
            r#"{"\ud800":0,"jsonrpc":"2.0","method":"x","id":1}"#,
            r#"{"\udc00":0,"jsonrpc":"2.0","method":"x","id":1}"#,
            r#"{"\ud800x":0,"jsonrpc":"2.0","method":"x","id":1}"#,
        ] {
            assert_eq!(err(body).code, jsonrpc::INVALID_REQUEST, "{body}");
        }
    }

    #[test]
    fn a_single_call_is_its_text_without_surrounding_whitespace() {
        let body = " \n{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":1}\r\n";
        let parsed = parse(body.as_bytes(), 3).unwrap();
        let call = parsed.calls().next().unwrap();
        assert_eq!(call.raw, body.trim());
    }

    #[test]
    fn escaped_strings_are_decoded() {
        assert_eq!(
            ok(r#" {"jsonrpc":"2\u002e0","method":"eth_\u0062lockNumber","id":1}"#),
            vec![("eth_blockNumber".to_owned(), Some("1".to_owned()))]
        );
        let e = err(r#"{"jsonrpc":"2\u002e1","method":"x","id":1}"#);
        assert_eq!(e.code, jsonrpc::INVALID_REQUEST);
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
            r#"{"jsonrpc":"2.0","id":[1],"method":"x"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":"bar"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","jsonrpc":"2.0"}"#,
        ] {
            let e = err(body);
            assert_eq!(e.code, jsonrpc::INVALID_REQUEST, "{body:?}: {}", e.message);
            assert_eq!(e.rejected_by, Some("json"));
        }
        // The id is echoed when it could be read.
        let e = err(r#"{"jsonrpc":"2.0","id":"x-1"}"#);
        assert_eq!(e.id.unwrap().get(), r#""x-1""#);
        // … and only then.
        assert!(
            err(r#"{"jsonrpc":"2.0","id":{"a":1},"method":"x"}"#)
                .id
                .is_none()
        );
    }

    #[test]
    fn invalid_batch_elements_are_answered_alone() {
        let Parsed::Batch(elements) = parse(
            br#"[{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}, 1, {"foo":"boo"}, {"jsonrpc":"2.0","id":"q"}]"#,
            10,
        )
        .unwrap() else {
            panic!("a batch")
        };
        let call = elements[0].call().unwrap();
        assert_eq!(
            call.raw,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#
        );
        assert_eq!(call.params.unwrap().get(), "[1]");
        for e in &elements[1..3] {
            assert!(
                matches!(e, Element::Invalid(Invalid { id: None, .. })),
                "{e:?}"
            );
        }
        let Element::Invalid(i) = &elements[3] else {
            panic!()
        };
        assert_eq!(i.id.unwrap().get(), r#""q""#);
        assert!(
            i.message.starts_with("batch element 3: missing"),
            "{}",
            i.message
        );
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
