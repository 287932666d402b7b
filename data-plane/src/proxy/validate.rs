//! Phase: is an upstream's answer a JSON-RPC answer to what was asked?
//!
//! An answer that is not (an HTML error page, a truncated body, an answer
//! to another id, a batch answer with calls missing, repeated or unasked)
//! is a failure of that upstream: it is retried like a 5xx for reads and
//! never passed to the client. What passes is split into one [`Member`]
//! per call, each a slice of the upstream's body.
//!
//! Upstream ids are Meridian's ([`super::outbound`]): call `i` of the
//! request has id `i`, so an answer's id names its call's position. The id
//! is read as a number, so a node that re-formats numbers (`1.0`, `1e0`) is
//! still understood; anything else (a string, a negative or fractional
//! number, a position past the request or of a notification) is an answer
//! to something not asked. A response object must also carry exactly one
//! of `result` and `error` (an object), and `"jsonrpc": "2.0"` when it
//! carries `jsonrpc` at all (some nodes leave it out). Notifications expect
//! nothing; an upstream's answer to a request of only notifications is not
//! read.

use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::batch::{Member, MemberKind};
use super::outbound::Expected;

#[derive(Deserialize)]
struct WireAnswer<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Checks `body`, the answer to a request (a batch or one call) whose
/// calls are `expected`, and returns each call's member in request order
/// (`None` for notifications).
pub fn validate(
    body: &Bytes,
    batch: bool,
    expected: &Expected,
) -> Result<Vec<Option<Member>>, String> {
    let mut members: Vec<Option<Member>> = vec![None; expected.calls()];
    if expected.answers() == 0 {
        return Ok(members);
    }
    let text = std::str::from_utf8(body).map_err(|_| "answer is not UTF-8".to_owned())?;
    if !batch {
        let answer = object(text)?;
        let (id, member) = member(body, &answer)?;
        if position(id) != Some(0) {
            return Err(format!(
                "answer is for id {}, not the one asked",
                short(id.get())
            ));
        }
        members[0] = Some(member);
        return Ok(members);
    }
    let elements: Vec<&RawValue> = serde_json::from_str(text)
        .map_err(|e| format!("answer to a batch is not a JSON array: {e}"))?;
    for element in elements {
        let answer = object(element.get())?;
        let (id, member) = member(body, &answer)?;
        let slot = position(id)
            .filter(|i| expected.expects(*i))
            .and_then(|i| members.get_mut(i))
            .ok_or_else(|| format!("answer for id {} that was not asked", short(id.get())))?;
        if slot.is_some() {
            return Err(format!("two answers for id {}", short(id.get())));
        }
        *slot = Some(member);
    }
    if let Some(missing) = expected
        .ids()
        .zip(&members)
        .find_map(|(id, m)| id.filter(|_| m.is_none()))
    {
        return Err(format!("no answer for id {missing}"));
    }
    Ok(members)
}

/// The call position a Meridian id names: a non-negative integer, however
/// the node wrote the number.
fn position(id: &RawValue) -> Option<usize> {
    let text = id.get();
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    if !text.starts_with(|c: char| c.is_ascii_digit()) {
        return None; // a string, null, a negative number
    }
    let n: f64 = serde_json::from_str(text).ok()?;
    // Ids are below the batch limit, far inside f64's exact integers.
    (n.fract() == 0.0 && n < 4_294_967_296.0).then_some(n as usize)
}

fn object(text: &str) -> Result<WireAnswer<'_>, String> {
    serde_json::from_str(text).map_err(|e| format!("not a JSON-RPC response: {e}"))
}

fn member<'a>(body: &Bytes, a: &WireAnswer<'a>) -> Result<(&'a RawValue, Member), String> {
    if let Some(v) = a.jsonrpc
        && v.get() != r#""2.0""#
    {
        return Err(format!("\"jsonrpc\" is {}, not \"2.0\"", short(v.get())));
    }
    let id = a.id.ok_or("response has no id")?;
    let (kind, value) = match (a.result, a.error) {
        (Some(r), None) => (MemberKind::Result, r),
        (None, Some(e)) if e.get().starts_with('{') => (MemberKind::Error, e),
        (None, Some(_)) => return Err("\"error\" is not an object".into()),
        (Some(_), Some(_)) => return Err("response has both result and error".into()),
        (None, None) => return Err("response has neither result nor error".into()),
    };
    let value = body.slice_ref(value.get().as_bytes());
    Ok((id, Member { kind, value }))
}

fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::outbound;
    use crate::proxy::parse::{Call, parse};

    /// The `expected` of a request of `calls` calls; those in `notes` are
    /// notifications.
    fn expected(calls: usize, notes: &[usize]) -> Expected {
        let body: Vec<String> = (0..calls)
            .map(|i| {
                if notes.contains(&i) {
                    r#"{"jsonrpc":"2.0","method":"n"}"#.to_owned()
                } else {
                    format!(r#"{{"jsonrpc":"2.0","method":"m","id":"client-{i}"}}"#)
                }
            })
            .collect();
        let body = format!("[{}]", body.join(","));
        let parsed = parse(body.as_bytes(), 100).unwrap();
        let calls: Vec<&Call<'_>> = parsed.calls().collect();
        outbound::batch(&calls).1
    }

    fn check(body: &str, batch: bool, expected: &Expected) -> Result<Vec<Option<String>>, String> {
        let body = Bytes::copy_from_slice(body.as_bytes());
        validate(&body, batch, expected).map(|members| {
            members
                .into_iter()
                .map(|m| m.map(|m| String::from_utf8(m.value.to_vec()).unwrap()))
                .collect()
        })
    }

    #[test]
    fn accepts_answers_to_what_was_asked() {
        let one = expected(1, &[]);
        assert_eq!(
            check(r#"{"jsonrpc":"2.0","id":0,"result":"0x1"}"#, false, &one),
            Ok(vec![Some(r#""0x1""#.into())])
        );
        // A node that re-formats numbers is still understood.
        for id in ["0.0", "0e0", "0E+2", "0.000"] {
            let body = format!(r#"{{"id":{id},"error":{{"code":1,"message":"x"}}}}"#);
            assert_eq!(
                check(&body, false, &one),
                Ok(vec![Some(r#"{"code":1,"message":"x"}"#.into())]),
                "{id}"
            );
        }
        // Batch answers in any order, notifications skipped.
        assert_eq!(
            check(
                r#"[{"jsonrpc":"2.0","id":2.0,"result":2},{"jsonrpc":"2.0","id":0,"result":1}]"#,
                true,
                &expected(3, &[1])
            ),
            Ok(vec![Some("1".into()), None, Some("2".into())])
        );
        // Nothing is read when nothing is expected.
        assert_eq!(check("<html>", false, &expected(1, &[0])), Ok(vec![None]));
    }

    #[test]
    fn refuses_everything_else() {
        let one = expected(1, &[]);
        let two = expected(2, &[]);
        for (body, batch, expected) in [
            ("<html><body>502 Bad Gateway</body></html>", false, &one),
            (r#"{"jsonrpc":"2.0","id":0,"res"#, false, &one),
            (r#"{"jsonrpc":"2.0","id":1,"result":1}"#, false, &one),
            (r#"{"jsonrpc":"2.0","id":"0","result":1}"#, false, &one),
            (r#"{"jsonrpc":"2.0","id":-0,"result":1}"#, false, &one),
            (r#"{"jsonrpc":"2.0","id":0.5,"result":1}"#, false, &one),
            (r#"{"jsonrpc":"2.0","id":null,"result":1}"#, false, &one),
            (r#"{"jsonrpc":"2.0","result":1}"#, false, &one),
            (r#"{"jsonrpc":"2.0","id":0}"#, false, &one),
            (
                r#"{"jsonrpc":"2.0","id":0,"result":1,"error":{}}"#,
                false,
                &one,
            ),
            (r#"{"jsonrpc":"2.0","id":0,"error":"boom"}"#, false, &one),
            (r#"{"jsonrpc":"1.0","id":0,"result":1}"#, false, &one),
            (r#"[{"jsonrpc":"2.0","id":0,"result":1}]"#, false, &one),
            (r#"{"jsonrpc":"2.0","id":0,"result":1}"#, true, &one),
            (r#"[{"jsonrpc":"2.0","id":0,"result":1}]"#, true, &two),
            (r#"[{"jsonrpc":"2.0","id":2,"result":1}]"#, true, &one),
            (
                r#"[{"jsonrpc":"2.0","id":0,"result":1},{"jsonrpc":"2.0","id":0,"result":1}]"#,
                true,
                &two,
            ),
            (
                r#"[{"jsonrpc":"2.0","id":0,"result":1},{"jsonrpc":"2.0","id":1,"result":1}]"#,
                true,
                &expected(2, &[1]),
            ),
            ("", false, &one),
        ] {
            assert!(check(body, batch, expected).is_err(), "{body} passed");
        }
    }
}
