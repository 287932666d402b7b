//! Invariants of the request parser and the batch splitter/reassembler, as
//! one function over arbitrary bytes: the body of the cargo-fuzz target in
//! `data-plane/fuzz/` and of a unit test over a corpus of tricky inputs.
//!
//! For any input: parsing never panics; every refusal is -32700 or -32600
//! (or the batch limit); for an accepted request, each call's raw text is
//! valid JSON that parses to the same call; what goes upstream parses to
//! the same methods and params with Meridian's ids in place of the
//! client's (notifications still without); and splitting it into jobs,
//! answering each call with Meridian's id and reassembling gives exactly
//! one answer per non-notification, in request order, with the client's
//! id bytes.

use bytes::Bytes;
use meridian_common::jsonrpc;
use serde_json::value::RawValue;

use super::batch::{Member, MemberKind, Outcome, plan, reassemble, write_response};
use super::classify::Route;
use super::outbound::{self, Expected};
use super::parse::{Call, Element, Parsed, parse};
use super::validate::validate;

/// Largest batch the fuzz target accepts (the default policy's).
const MAX_BATCH: u32 = 100;

/// Checks every invariant on `data`; panics on a violation.
pub fn check_request(data: &[u8]) {
    let parsed = match parse(data, MAX_BATCH) {
        Ok(parsed) => parsed,
        Err(e) => {
            assert!(
                [
                    jsonrpc::PARSE_ERROR,
                    jsonrpc::INVALID_REQUEST,
                    jsonrpc::LIMIT_EXCEEDED
                ]
                .contains(&e.code),
                "unexpected refusal code {}",
                e.code
            );
            assert!(e.rejected_by.is_some());
            return;
        }
    };
    let elements: Vec<&Element<'_>> = match &parsed {
        Parsed::Single(call) => {
            assert!(
                parse(call.raw.as_bytes(), MAX_BATCH).is_ok(),
                "raw text reparses"
            );
            return check_single(call);
        }
        Parsed::Batch(elements) => elements.iter().collect(),
    };
    assert!(!elements.is_empty() && elements.len() <= MAX_BATCH as usize);
    // Route calls alternately as reads and writes to exercise grouping.
    let routes: Vec<Option<Route>> = elements
        .iter()
        .enumerate()
        .map(|(i, e)| {
            e.call().map(|_| {
                if i % 3 == 2 {
                    Route::Write { broadcast: true }
                } else {
                    Route::Read
                }
            })
        })
        .collect();
    let mut outcomes: Vec<Outcome> = elements
        .iter()
        .map(|e| match e {
            Element::Invalid(i) => Outcome::Error {
                code: jsonrpc::INVALID_REQUEST,
                message: i.message.clone(),
            },
            Element::Call(_) => Outcome::Silent,
        })
        .collect();
    let mut covered = vec![false; elements.len()];
    for group in plan(&routes) {
        let calls: Vec<_> = group
            .members
            .iter()
            .filter_map(|i| elements[*i].call())
            .collect();
        assert_eq!(calls.len(), group.members.len(), "groups hold calls only");
        let (body, expected) = outbound::batch(&calls);
        let reparsed =
            parse(&body, MAX_BATCH).unwrap_or_else(|e| panic!("sub-batch: {}", e.message));
        let resent: Vec<&Call<'_>> = reparsed.calls().collect();
        assert_eq!(resent.len(), calls.len());
        for ((sent, asked), id) in resent.iter().zip(&calls).zip(expected.ids()) {
            assert_same_call(sent, asked, id);
        }
        let members = validate(&node_answer(&expected, true), true, &expected)
            .unwrap_or_else(|e| panic!("own answer refused: {e}"));
        for (i, member) in group.members.iter().zip(members) {
            assert!(!covered[*i], "element {i} in two groups");
            covered[*i] = true;
            if let Some(member) = member {
                outcomes[*i] = Outcome::Answer(member);
            }
        }
    }
    for (i, c) in covered.iter().enumerate() {
        assert_eq!(*c, elements[i].call().is_some(), "element {i} coverage");
    }
    let ids: Vec<Option<&RawValue>> = elements
        .iter()
        .map(|e| match e {
            Element::Call(c) => c.id,
            Element::Invalid(i) => i.id,
        })
        .collect();
    let expected: Vec<&Element<'_>> = elements
        .iter()
        .copied()
        .filter(|e| e.call().is_none_or(|c| c.id.is_some()))
        .collect();
    let Some(out) = reassemble(&ids, &outcomes) else {
        assert!(expected.is_empty(), "an answer went missing");
        return;
    };
    let answers: Vec<&RawValue> = serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        answers.len(),
        expected.len(),
        "one answer per non-notification"
    );
    for (answer, element) in answers.iter().zip(expected) {
        #[derive(serde::Deserialize)]
        struct Id<'a> {
            #[serde(borrow)]
            id: &'a RawValue,
        }
        let got: Id<'_> = serde_json::from_str(answer.get()).unwrap_or_else(|e| panic!("{e}"));
        let want = match element {
            Element::Call(c) => c.id.map(RawValue::get),
            Element::Invalid(i) => i.id.map(RawValue::get),
        };
        assert_eq!(
            got.id.get(),
            want.unwrap_or("null"),
            "ids in request order, byte for byte"
        );
    }
}

fn check_single(call: &Call<'_>) {
    let (body, expected) = outbound::single(call);
    let reparsed = parse(&body, MAX_BATCH)
        .unwrap_or_else(|e| panic!("{} resent as {body:?}: {}", call.raw, e.message));
    let Parsed::Single(sent) = &reparsed else {
        panic!("a single call resent as a batch")
    };
    assert_same_call(sent, call, expected.ids().next().flatten());
    if call.is_notification() {
        return;
    }
    let members = validate(&node_answer(&expected, false), false, &expected)
        .unwrap_or_else(|e| panic!("own answer to {} refused: {e}", call.raw));
    assert_eq!(members.len(), 1);
    assert!(members[0].is_some());
}

/// `sent` (what went upstream) is `asked` with Meridian's `id` (`None`: a
/// notification) in place of the client's.
fn assert_same_call(sent: &Call<'_>, asked: &Call<'_>, id: Option<usize>) {
    assert_eq!(sent.method, asked.method, "the method travels");
    assert_eq!(
        sent.params.map(RawValue::get),
        asked.params.map(RawValue::get),
        "the params travel as written"
    );
    assert_eq!(sent.is_notification(), asked.is_notification());
    assert_eq!(
        sent.id.map(RawValue::get),
        id.map(|i| i.to_string()).as_deref()
    );
}

/// What an upstream answers to a request of `expected`: every call that
/// expects an answer, by Meridian's id, in reverse order.
fn node_answer(expected: &Expected, batch: bool) -> Bytes {
    let mut answer = Vec::new();
    let ids: Vec<usize> = expected.ids().flatten().collect();
    if batch {
        answer.push(b'[');
    }
    for (n, id) in ids.iter().rev().enumerate() {
        if n > 0 {
            answer.push(b',');
        }
        let raw = RawValue::from_string(id.to_string()).unwrap_or_else(|e| panic!("{e}"));
        let result = Outcome::Answer(Member {
            kind: MemberKind::Result,
            value: Bytes::from(id.to_string()),
        });
        write_response(&mut answer, Some(&raw), &result);
    }
    if batch {
        answer.push(b']');
    }
    Bytes::from(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed corpus of the fuzz target, plus inputs that once looked risky.
    pub const CORPUS: &[&str] = &[
        "",
        " ",
        "[",
        "[]",
        "[[]]",
        "[1]",
        "[1,2,3]",
        "null",
        "{}",
        r#"{"jsonrpc":"2.0","method":"x"}"#,
        r#"{"jsonrpc":"2.0","method":"x","id":null}"#,
        r#"{"jsonrpc":"2.0","method":"x","id":1e400}"#,
        r#"{"jsonrpc":"2.0","method":"x","id":-0.0}"#,
        r#"{"jsonrpc":"2.0","method":"x","id":"\u0000"}"#,
        r#"{"jsonrpc":"2.0","method":"x","id":123456789012345678901234567890}"#,
        r#"{"jsonrpc":"2.0","method":"x","id":true}"#,
        r#"{"jsonrpc":"2.0","method":"\ud800","id":1}"#,
        r#"[{"jsonrpc":"2.0","method":"a","id":1},{"jsonrpc":"2.0","method":"a","id":1}]"#,
        r#"[{"jsonrpc":"2.0","method":"a","id":1.0},{"jsonrpc":"2.0","method":"a","id":1}]"#,
        r#"[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"b"}]"#,
        r#"[{"jsonrpc":"2.0","method":"a","id":"1"}, {"foo":"boo"}, 7, {"jsonrpc":"2.0","method":"w","id":[]}]"#,
        "\u{feff}{}",
        "[{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":1}  ,  {\"jsonrpc\":\"2.0\",\"method\":\"b\",\"id\":2}]",
    ];

    #[test]
    fn the_corpus_keeps_every_invariant() {
        for input in CORPUS {
            check_request(input.as_bytes());
        }
        check_request(b"\xff\xfe[");
        let long = format!(
            "[{}]",
            vec![r#"{"jsonrpc":"2.0","method":"m","id":1}"#; 101].join(",")
        );
        check_request(long.as_bytes());
    }
}
