//! Property tests of the batch splitter and reassembler: for any batch,
//! ids and order are preserved and every non-notification (and every
//! invalid element) gets exactly one answer, its own, whatever order the
//! upstreams answer in and however many calls share a client id (upstreams
//! see Meridian's ids, unique per request).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use meridian_data_plane::proxy::batch::{
    Member, MemberKind, Outcome, plan, reassemble, write_response,
};
use meridian_data_plane::proxy::classify::Route;
use meridian_data_plane::proxy::fuzz::check_request;
use meridian_data_plane::proxy::outbound;
use meridian_data_plane::proxy::parse::{Element, Parsed, parse};
use meridian_data_plane::proxy::validate::validate;
use proptest::prelude::*;
use serde_json::value::RawValue;

/// One generated batch element: its JSON text and the id its answer must
/// carry (`None`: no answer expected).
#[derive(Debug, Clone)]
struct Gen {
    json: String,
    answer_id: Option<String>,
    is_call: bool,
}

fn id() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("null".to_owned())),
        any::<i64>().prop_map(|n| Some(n.to_string())),
        "[1-9][0-9]{19,39}".prop_map(Some),
        (any::<i32>(), 0u32..1000).prop_map(|(a, b)| Some(format!("{a}.{b}"))),
        "[a-zA-Z0-9 _\\-é\"\\\\]{0,12}".prop_map(|s| Some(serde_json::to_string(&s).unwrap())),
    ]
}

fn element() -> impl Strategy<Value = Gen> {
    let call = (
        prop_oneof![
            Just("eth_call"),
            Just("eth_sendRawTransaction"),
            Just("eth_getBalance"),
            Just("x")
        ],
        id(),
        prop_oneof![
            Just(""),
            Just(r#","params":[]"#),
            Just(r#","params":{"a":[1,{"b":null}]}"#)
        ],
    )
        .prop_map(|(method, id, params)| {
            let id_member = id
                .as_ref()
                .map(|i| format!(r#","id":{i}"#))
                .unwrap_or_default();
            Gen {
                json: format!(r#"{{"jsonrpc":"2.0","method":"{method}"{id_member}{params}}}"#),
                answer_id: id,
                is_call: true,
            }
        });
    // An invalid element is answered with id null, unless its id could be
    // read (then it is echoed).
    let invalid = prop_oneof![
        Just(("1", "null")),
        Just((r#"{"foo":"boo"}"#, "null")),
        Just(("[]", "null")),
        Just((r#"{"jsonrpc":"2.0","method":1,"id":{"a":1}}"#, "null")),
        Just((r#"{"jsonrpc":"1.0","method":"x","id":1}"#, "1")),
    ]
    .prop_map(|(json, id)| Gen {
        json: json.to_owned(),
        answer_id: Some(id.to_owned()),
        is_call: false,
    });
    prop_oneof![4 => call, 1 => invalid]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn ids_and_order_survive_split_and_reassembly(
        elements in prop::collection::vec(element(), 1..40),
        seed in any::<u64>(),
    ) {
        let body = format!("[{}]", elements.iter().map(|e| e.json.as_str()).collect::<Vec<_>>().join(" , "));
        check_request(body.as_bytes());

        let Parsed::Batch(parsed) = parse(body.as_bytes(), 100).unwrap() else { panic!("a batch") };
        prop_assert_eq!(parsed.len(), elements.len());
        let routes: Vec<Option<Route>> = parsed
            .iter()
            .map(|e| e.call().map(|c| if c.method == "eth_sendRawTransaction" {
                Route::Write { broadcast: true }
            } else if c.method == "eth_getBalance" {
                Route::Archive
            } else {
                Route::Read
            }))
            .collect();
        let mut outcomes: Vec<Outcome> = parsed
            .iter()
            .map(|e| match e {
                Element::Invalid(i) => Outcome::Error { code: -32600, message: i.message.clone() },
                Element::Call(_) => Outcome::Silent,
            })
            .collect();
        for group in plan(&routes) {
            let calls: Vec<_> = group.members.iter().map(|i| parsed[*i].call().unwrap()).collect();
            let (_, expected) = outbound::batch(&calls);
            // The upstream answers in a shuffled order, by Meridian's ids,
            // each result naming the element's position in the request.
            let mut answered: Vec<(usize, usize)> = group
                .members
                .iter()
                .zip(expected.ids())
                .filter_map(|(i, id)| id.map(|id| (*i, id)))
                .collect();
            let n = answered.len();
            for k in (1..n).rev() {
                answered.swap(k, (seed as usize).wrapping_mul(k + 7) % (k + 1));
            }
            let mut out = b"[".to_vec();
            for (k, (i, id)) in answered.iter().enumerate() {
                if k > 0 { out.push(b','); }
                let id = RawValue::from_string(id.to_string()).unwrap();
                let result = Outcome::Answer(Member { kind: MemberKind::Result, value: Bytes::from(i.to_string()) });
                write_response(&mut out, Some(&id), &result);
            }
            out.push(b']');
            let members = validate(&Bytes::from(out), true, &expected).unwrap();
            for (i, m) in group.members.iter().zip(members) {
                if let Some(m) = m {
                    outcomes[*i] = Outcome::Answer(m);
                }
            }
        }
        let ids: Vec<Option<&RawValue>> = parsed
            .iter()
            .map(|e| match e {
                Element::Call(c) => c.id,
                Element::Invalid(i) => i.id,
            })
            .collect();
        let expected: Vec<(usize, &str)> = elements
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.answer_id.as_deref().map(|id| (i, id)))
            .collect();
        match reassemble(&ids, &outcomes) {
            None => prop_assert!(expected.is_empty()),
            Some(out) => {
                let answers: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
                let raw: Vec<&RawValue> = serde_json::from_slice(&out).unwrap();
                prop_assert_eq!(answers.len(), expected.len(), "one answer per element that expects one");
                for ((answer, raw), (i, id)) in answers.iter().zip(raw).zip(&expected) {
                    #[derive(serde::Deserialize)]
                    struct Id<'a> { #[serde(borrow)] id: &'a RawValue }
                    let got: Id<'_> = serde_json::from_str(raw.get()).unwrap();
                    prop_assert_eq!(got.id.get(), *id, "id bytes preserved");
                    if elements[*i].is_call {
                        // A call: its own answer, in its own position, even
                        // when other calls share its client id.
                        prop_assert_eq!(&answer["result"], &serde_json::json!(i));
                    } else {
                        prop_assert_eq!(&answer["error"]["code"], &serde_json::json!(-32600));
                    }
                }
            }
        }
    }

    #[test]
    fn the_parser_keeps_its_invariants_on_any_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        check_request(&data);
    }
}
