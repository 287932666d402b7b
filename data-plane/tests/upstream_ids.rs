//! Meridian's own ids upstream: nodes see small integers Meridian chose,
//! never a client's id, and clients get their own ids back byte for byte,
//! however the node writes numbers, for single calls, batches (split or
//! not), retries, hedges and broadcasts. Notifications stay notifications.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use http::StatusCode;
use meridian_common::proto;
use meridian_data_plane::app::DataPlane;
use serde_json::value::RawValue;
use support::*;

/// Client ids that break naive proxies: past f64's precision (what ganache
/// mangles), strings with escapes and non-ASCII, `null`, negative,
/// fractional and exponent numbers.
const IDS: &[&str] = &[
    "12345678901234567890",
    "123456789012345678901234567890",
    r#""a\"b\\c\u00e9 é ☃ \ud83d\ude00""#,
    r#""""#,
    "null",
    "-1",
    "-0",
    "1.5",
    "1.0",
    "1e400",
    "0",
];

fn in_region(mut u: proto::Upstream, region: &str) -> proto::Upstream {
    u.region = region.into();
    u
}

async fn one_node() -> (DataPlane, tempfile::TempDir, Node) {
    let node = Node::named("a").await;
    node.set_fault(Fault::LossyIds);
    let (dp, dir) = data_plane(
        snapshot(
            vec![upstream("a", &node.url())],
            None,
            proto::NetworkPolicy {
                hedge_after_ms: 600_000,
                ..Default::default()
            },
        ),
        |_| {},
    )
    .await;
    (dp, dir, node)
}

/// One response object, as raw text: `serde_json::Value` cannot hold
/// ids such as `1e400`, and the point is the bytes.
struct Answer {
    id: String,
    result: Option<String>,
    error_code: Option<i64>,
}

/// The responses of a body (one object or a batch), in order.
fn answers(body: &str) -> Vec<Answer> {
    #[derive(serde::Deserialize)]
    struct Error {
        code: i64,
    }
    #[derive(serde::Deserialize)]
    struct Object<'a> {
        #[serde(borrow)]
        id: &'a RawValue,
        #[serde(borrow, default)]
        result: Option<&'a RawValue>,
        #[serde(default)]
        error: Option<Error>,
    }
    let parse = |text: &str| -> Answer {
        let o: Object<'_> = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        Answer {
            id: o.id.get().to_owned(),
            result: o.result.map(|r| r.get().to_owned()),
            error_code: o.error.map(|e| e.code),
        }
    };
    if body.trim_start().starts_with('[') {
        let elements: Vec<&RawValue> = serde_json::from_str(body).unwrap();
        elements.iter().map(|e| parse(e.get())).collect()
    } else {
        vec![parse(body)]
    }
}

fn raw_ids(body: &str) -> Vec<String> {
    answers(body).into_iter().map(|a| a.id).collect()
}

fn call(id: &str, method: &str, n: usize) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":[{n}]}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_call_gets_its_own_id_back_whatever_the_node_does_to_ids() {
    let (dp, _dir, node) = one_node().await;
    for (n, id) in IDS.iter().enumerate() {
        let r = post(&dp, "/eth", &call(id, "eth_getBalance", n), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{id}: {}", r.body);
        assert_eq!(raw_ids(&r.body), [*id], "{id}: byte for byte");
        assert_eq!(
            answers(&r.body)[0].result.as_deref(),
            Some(r#""a""#),
            "{id}: {}",
            r.body
        );
        assert_eq!(r.header("x-meridian-tries"), "1", "{id}");
    }
    // The node saw Meridian's id each time (written back as 0.0), and the
    // params that tell the calls apart.
    let want: Vec<String> = (0..IDS.len())
        .map(|n| format!("eth_getBalance:0:[{n}]"))
        .collect();
    assert_eq!(node.calls(), want);
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_batch_gets_every_id_back_in_order() {
    let (dp, _dir, node) = one_node().await;
    // Every id, a notification, an invalid element, a duplicate id, and a
    // write (which travels alone: the batch is split).
    let mut elements: Vec<String> = IDS
        .iter()
        .enumerate()
        .map(|(n, id)| call(id, "eth_call", n))
        .collect();
    elements.insert(
        3,
        r#"{"jsonrpc":"2.0","method":"eth_call","params":["note"]}"#.into(),
    );
    elements.insert(5, r#"{"foo":"boo"}"#.into());
    elements.push(call(IDS[0], "eth_call", 99));
    elements.push(call(r#""w\"1""#, "eth_sendRawTransaction", 100));
    let body = format!("[{}]", elements.join(","));
    let r = post(&dp, "/eth", &body, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut want: Vec<String> = IDS.iter().map(|id| (*id).to_owned()).collect();
    // The notification has no entry; the invalid element answers with null.
    want.insert(4, "null".into());
    want.push(IDS[0].into());
    want.push(r#""w\"1""#.into());
    assert_eq!(raw_ids(&r.body), want, "{}", r.body);
    let got = answers(&r.body);
    assert_eq!(got[4].error_code, Some(-32600), "{}", r.body);
    for (i, a) in got.iter().enumerate().filter(|(i, _)| *i != 4) {
        assert_eq!(
            a.result.as_deref(),
            Some(r#""a""#),
            "element {i}: {}",
            r.body
        );
    }

    // Upstream: the reads as one batch with ids 0, 1, … (the notification
    // without one), the write alone with id 0. Never a client id.
    let calls = node.calls();
    let reads: Vec<&String> = calls.iter().filter(|c| c.starts_with("eth_call")).collect();
    assert_eq!(reads.len(), IDS.len() + 2, "{calls:?}");
    for (position, c) in reads.iter().enumerate() {
        if c.ends_with(r#"["note"]"#) {
            assert_eq!(
                c.as_str(),
                r#"eth_call:-:["note"]"#,
                "a notification stays one"
            );
        } else {
            let id = c.split(':').nth(1).unwrap();
            assert_eq!(id, position.to_string(), "{calls:?}");
        }
    }
    assert!(
        calls.contains(&"eth_sendRawTransaction:0:[100]".to_owned()),
        "{calls:?}"
    );
    dp.shutdown().await;
}

/// Upstream `a` in the data plane's region, `b` elsewhere: `a` is tried
/// first, `b` retries and hedges. Both write ids back as floats.
async fn pair(policy: proto::NetworkPolicy) -> (DataPlane, tempfile::TempDir, Node, Node) {
    let (a, b) = (Node::named("a").await, Node::named("b").await);
    b.set_fault(Fault::LossyIds);
    let (dp, dir) = data_plane(
        snapshot(
            vec![
                in_region(upstream("a", &a.url()), "eu"),
                in_region(upstream("b", &b.url()), "us"),
            ],
            None,
            policy,
        ),
        |_| {},
    )
    .await;
    (dp, dir, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_hedges_and_broadcasts_keep_the_clients_id() {
    let id = IDS[2];
    // A retry: a fails, b answers.
    let (dp, _dir, a, b) = pair(proto::NetworkPolicy {
        hedge_after_ms: 600_000,
        eject_after_failures: 1_000,
        ..Default::default()
    })
    .await;
    a.script([Fault::Status(502)]);
    let r = post(&dp, "/eth", &call(id, "eth_call", 1), &[]).await;
    assert_eq!(r.header("x-meridian-tries"), "2", "{}", r.body);
    assert_eq!(r.header("x-handled-by"), "b");
    assert_eq!(raw_ids(&r.body), [id]);
    assert_eq!(
        (a.calls(), b.calls()),
        (
            vec!["eth_call:0:[1]".to_owned()],
            vec!["eth_call:0:[1]".to_owned()]
        )
    );
    dp.shutdown().await;

    // A hedge: a is slow, the backup try on b wins.
    let (dp, _dir, a, b) = pair(proto::NetworkPolicy {
        hedge_after_ms: 50,
        request_timeout_ms: 60_000,
        ..Default::default()
    })
    .await;
    a.set_fault(Fault::Delay(Duration::from_secs(30)));
    let r = post(&dp, "/eth", &call(id, "eth_call", 2), &[]).await;
    assert_eq!(r.header("x-handled-by"), "b", "{}", r.body);
    assert_eq!(raw_ids(&r.body), [id]);
    assert_eq!(b.calls(), ["eth_call:0:[2]"]);
    dp.shutdown().await;

    // A broadcast write: both nodes get Meridian's id, the client its own.
    let (dp, _dir, a, b) = pair(proto::NetworkPolicy {
        write_broadcast: 2,
        hedge_after_ms: 600_000,
        ..Default::default()
    })
    .await;
    let r = post(&dp, "/eth", &call(id, "eth_sendRawTransaction", 3), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(raw_ids(&r.body), [id]);
    eventually("both copies of the write", || async {
        a.total_requests() == 1 && b.total_requests() == 1
    })
    .await;
    for node in [&a, &b] {
        assert_eq!(node.calls(), ["eth_sendRawTransaction:0:[3]"]);
    }
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_goes_upstream_without_an_id() {
    let (dp, _dir, node) = one_node().await;
    let r = post(
        &dp,
        "/eth",
        r#"{"jsonrpc":"2.0","method":"eth_call","params":[7]}"#,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(node.calls(), ["eth_call:-:[7]"]);
    dp.shutdown().await;
}
