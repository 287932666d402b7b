//! Phase: is an upstream's answer a JSON-RPC answer to what was asked?
//!
//! An answer that is not (an HTML error page, a truncated body, an answer
//! to another id, a batch answer with calls missing or unasked) is a failure
//! of that upstream: it is retried like a 5xx for reads and never passed to
//! the client. What passes is split into one [`Member`] per call, each a
//! slice of the upstream's body.
//!
//! A response object must carry the asked id (compared as raw text, or as
//! JSON values when the upstream re-formatted it: `1.0` vs `1`), exactly
//! one of `result` and `error` (an object), and `"jsonrpc": "2.0"` when it
//! carries `jsonrpc` at all (some nodes leave it out). Notifications expect
//! nothing; an upstream's answer to a request of only notifications is not
//! read.

use std::ops::Deref;

use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::batch::{Member, MemberKind};

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

/// What a valid answer holds.
#[derive(Debug)]
pub struct Validation {
    /// One per call (`None` for notifications).
    pub members: Vec<Option<Member>>,
    /// A single answer whose id has the asked id's exact text: the body
    /// can be passed to the client as it is.
    pub verbatim: bool,
}

/// Checks `body`, sent for calls with `ids` (`None`: a notification) as a
/// batch or as one call, and returns each call's member (`None` for
/// notifications). The ids may be borrowed or owned (`&RawValue`,
/// `Box<RawValue>`), so callers pass what they hold without collecting.
pub fn validate<Id>(body: &Bytes, batch: bool, ids: &[Option<Id>]) -> Result<Validation, String>
where
    Id: Deref<Target = RawValue>,
{
    if ids.iter().all(Option::is_none) {
        return Ok(Validation {
            members: vec![None; ids.len()],
            verbatim: false,
        });
    }
    let text = std::str::from_utf8(body).map_err(|_| "answer is not UTF-8".to_owned())?;
    let mut members: Vec<Option<Member>> = vec![None; ids.len()];
    if !batch {
        let answer = object(text)?;
        let (id, member) = member(body, &answer)?;
        let asked = ids.first().and_then(Option::as_deref);
        if !asked.is_some_and(|asked| same_id(asked, id)) {
            return Err(format!(
                "answer is for id {}, not the one asked",
                short(id.get())
            ));
        }
        members[0] = Some(member);
        let verbatim = asked.is_some_and(|asked| asked.get() == id.get());
        return Ok(Validation { members, verbatim });
    }
    let elements: Vec<&RawValue> = serde_json::from_str(text)
        .map_err(|e| format!("answer to a batch is not a JSON array: {e}"))?;
    for element in elements {
        let answer = object(element.get())?;
        let (id, member) = member(body, &answer)?;
        let slot = ids
            .iter()
            .zip(members.iter())
            .position(|(asked, m)| m.is_none() && asked.as_deref().is_some_and(|a| same_id(a, id)))
            .ok_or_else(|| format!("answer for id {} that was not asked", short(id.get())))?;
        members[slot] = Some(member);
    }
    if let Some(missing) = ids
        .iter()
        .zip(members.iter())
        .find_map(|(asked, m)| if m.is_none() { asked.as_deref() } else { None })
    {
        return Err(format!("no answer for id {}", short(missing.get())));
    }
    Ok(Validation {
        members,
        verbatim: false,
    })
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

/// Same JSON-RPC id: same text, or equal JSON values (numbers compared
/// by value, so `7.0` answers `7`).
pub fn same_id(a: &RawValue, b: &RawValue) -> bool {
    use serde_json::Value;
    if a.get() == b.get() {
        return true;
    }
    match (
        serde_json::from_str::<Value>(a.get()),
        serde_json::from_str::<Value>(b.get()),
    ) {
        (Ok(Value::Number(x)), Ok(Value::Number(y))) => x.as_f64() == y.as_f64(),
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.into()).unwrap()
    }

    fn check(body: &str, batch: bool, ids: &[Option<&str>]) -> Result<Vec<Option<String>>, String> {
        let owned: Vec<Option<Box<RawValue>>> = ids.iter().map(|i| i.map(id)).collect();
        let body = Bytes::copy_from_slice(body.as_bytes());
        validate(&body, batch, &owned).map(|v| {
            v.members
                .into_iter()
                .map(|m| m.map(|m| String::from_utf8(m.value.to_vec()).unwrap()))
                .collect()
        })
    }

    #[test]
    fn accepts_answers_to_what_was_asked() {
        assert_eq!(
            check(
                r#"{"jsonrpc":"2.0","id":7,"result":"0x1"}"#,
                false,
                &[Some("7")]
            ),
            Ok(vec![Some(r#""0x1""#.into())])
        );
        assert_eq!(
            check(
                r#"{"id":7.0,"error":{"code":1,"message":"x"}}"#,
                false,
                &[Some("7")]
            ),
            Ok(vec![Some(r#"{"code":1,"message":"x"}"#.into())])
        );
        assert_eq!(
            check(
                r#"{"jsonrpc":"2.0","id":null,"result":null}"#,
                false,
                &[Some("null")]
            ),
            Ok(vec![Some("null".into())])
        );
        // Batch answers in any order, notifications skipped.
        assert_eq!(
            check(
                r#"[{"jsonrpc":"2.0","id":"b","result":2},{"jsonrpc":"2.0","id":"a","result":1}]"#,
                true,
                &[Some(r#""a""#), None, Some(r#""b""#)]
            ),
            Ok(vec![Some("1".into()), None, Some("2".into())])
        );
        // Duplicate ids are matched in order.
        assert_eq!(
            check(
                r#"[{"jsonrpc":"2.0","id":1,"result":"x"},{"jsonrpc":"2.0","id":1,"result":"y"}]"#,
                true,
                &[Some("1"), Some("1")]
            ),
            Ok(vec![Some(r#""x""#.into()), Some(r#""y""#.into())])
        );
        // Nothing is read when nothing is expected.
        assert_eq!(check("<html>", false, &[None]), Ok(vec![None]));
    }

    #[test]
    fn refuses_everything_else() {
        for (body, batch, ids) in [
            (
                "<html><body>502 Bad Gateway</body></html>",
                false,
                vec![Some("1")],
            ),
            (r#"{"jsonrpc":"2.0","id":1,"res"#, false, vec![Some("1")]),
            (
                r#"{"jsonrpc":"2.0","id":2,"result":1}"#,
                false,
                vec![Some("1")],
            ),
            (r#"{"jsonrpc":"2.0","result":1}"#, false, vec![Some("1")]),
            (r#"{"jsonrpc":"2.0","id":1}"#, false, vec![Some("1")]),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":1,"error":{}}"#,
                false,
                vec![Some("1")],
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"error":"boom"}"#,
                false,
                vec![Some("1")],
            ),
            (
                r#"{"jsonrpc":"1.0","id":1,"result":1}"#,
                false,
                vec![Some("1")],
            ),
            (
                r#"[{"jsonrpc":"2.0","id":1,"result":1}]"#,
                false,
                vec![Some("1")],
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":1}"#,
                true,
                vec![Some("1")],
            ),
            (
                r#"[{"jsonrpc":"2.0","id":1,"result":1}]"#,
                true,
                vec![Some("1"), Some("2")],
            ),
            (
                r#"[{"jsonrpc":"2.0","id":3,"result":1}]"#,
                true,
                vec![Some("1")],
            ),
            ("", false, vec![Some("1")]),
        ] {
            assert!(check(body, batch, &ids).is_err(), "{body} passed");
        }
    }
}
