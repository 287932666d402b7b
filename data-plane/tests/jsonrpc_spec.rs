//! The JSON-RPC 2.0 specification's own examples (section 7), case by case,
//! through a real data plane to a mock node that implements the example
//! methods (`subtract`, `sum`, `get_data`; anything else is -32601 from the
//! node). Batches are answered in the request's order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use http::StatusCode;
use meridian_common::proto;
use serde_json::{Value, json};
use support::*;

async fn setup() -> (meridian_data_plane::app::DataPlane, tempfile::TempDir, Node) {
    let node = Node::named("a").await;
    let (dp, dir) = data_plane(
        snapshot(
            vec![upstream("a", &node.url())],
            None,
            proto::NetworkPolicy::default(),
        ),
        |_| {},
    )
    .await;
    (dp, dir, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_calls_with_positional_and_named_parameters() {
    let (dp, _dir, _node) = setup().await;
    for (body, want) in [
        (
            r#"{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}"#,
            json!({"jsonrpc": "2.0", "result": 19, "id": 1}),
        ),
        (
            r#"{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}"#,
            json!({"jsonrpc": "2.0", "result": -19, "id": 2}),
        ),
        (
            r#"{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}"#,
            json!({"jsonrpc": "2.0", "result": 19, "id": 3}),
        ),
        (
            r#"{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}"#,
            json!({"jsonrpc": "2.0", "result": 19, "id": 4}),
        ),
    ] {
        let r = post(&dp, "/eth", body, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json(), want);
        assert_eq!(r.header("x-handled-by"), "a");
        assert_eq!(r.header("x-meridian-tries"), "1");
    }
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_gets_no_response_but_reaches_the_node() {
    let (dp, _dir, node) = setup().await;
    for body in [
        r#"{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}"#,
        r#"{"jsonrpc": "2.0", "method": "foobar"}"#,
    ] {
        let before = node.total_requests();
        let r = post(&dp, "/eth", body, &[]).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(r.body, "");
        assert_eq!(node.total_requests(), before + 1);
    }
    // `"id": null` is a call, not a notification.
    let r = post(
        &dp,
        "/eth",
        r#"{"jsonrpc":"2.0","method":"eth_chainId","id":null}"#,
        &[],
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"jsonrpc": "2.0", "result": "a", "id": null})
    );
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_for_a_missing_method_invalid_json_and_invalid_requests() {
    let (dp, _dir, node) = setup().await;
    // Non-existent method: the node's own answer, passed on.
    let r = post(
        &dp,
        "/eth",
        r#"{"jsonrpc": "2.0", "method": "foobar", "id": "1"}"#,
        &[],
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"})
    );
    let hits = node.total_requests();

    // Invalid JSON.
    let r = post(
        &dp,
        "/eth",
        r#"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["code"], -32700);
    assert_eq!(r.json()["id"], Value::Null);
    assert_eq!(r.header("x-rejected-by"), "json");

    // Invalid Request object.
    let r = post(
        &dp,
        "/eth",
        r#"{"jsonrpc": "2.0", "method": 1, "params": "bar"}"#,
        &[],
    )
    .await;
    assert_eq!(r.json()["error"]["code"], -32600);
    assert_eq!(r.json()["id"], Value::Null);

    // Batch, invalid JSON: one error, not an array.
    let r = post(
        &dp,
        "/eth",
        r#"[
          {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
          {"jsonrpc": "2.0", "method"
        ]"#,
        &[],
    )
    .await;
    assert_eq!(r.json()["error"]["code"], -32700);
    assert_eq!(r.json()["id"], Value::Null);

    // Empty array: one error, not an array.
    let r = post(&dp, "/eth", "[]", &[]).await;
    assert_eq!(r.json()["error"]["code"], -32600);
    assert_eq!(r.json()["id"], Value::Null);
    assert!(r.json().is_object());

    // An invalid batch, but not empty: an array of errors.
    let invalid = json!({"jsonrpc": "2.0", "error": {"code": -32600}, "id": null});
    for (body, n) in [("[1]", 1), ("[1,2,3]", 3)] {
        let r = post(&dp, "/eth", body, &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        let answers = r.json();
        let answers = answers.as_array().unwrap();
        assert_eq!(answers.len(), n, "{}", r.body);
        for a in answers {
            assert_eq!(a["error"]["code"], invalid["error"]["code"]);
            assert_eq!(a["id"], Value::Null);
            assert!(a["error"]["message"].is_string());
        }
        assert_eq!(r.header("x-rejected-by"), "json");
    }
    assert_eq!(
        node.total_requests(),
        hits,
        "nothing invalid reached the node"
    );
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_batch_is_answered_element_by_element_in_order() {
    let (dp, _dir, _node) = setup().await;
    let r = post(
        &dp,
        "/eth",
        r#"[
            {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
            {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
            {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
            {"foo": "boo"},
            {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
            {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
        ]"#,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let answers = r.json();
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), 5, "{}", r.body);
    assert_eq!(
        answers[0],
        json!({"jsonrpc": "2.0", "result": 7, "id": "1"})
    );
    assert_eq!(
        answers[1],
        json!({"jsonrpc": "2.0", "result": 19, "id": "2"})
    );
    assert_eq!(answers[2]["error"]["code"], -32600);
    assert_eq!(answers[2]["id"], Value::Null);
    assert_eq!(
        answers[3],
        json!({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"})
    );
    assert_eq!(
        answers[4],
        json!({"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"})
    );
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_only_notifications_is_204_with_no_body() {
    let (dp, _dir, node) = setup().await;
    let r = post(
        &dp,
        "/eth",
        r#"[
            {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
            {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
        ]"#,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.body, "");
    assert_eq!(
        node.calls(),
        ["notify_sum:-:[1,2,4]", "notify_hello:-:[7]"],
        "notifications stay notifications upstream"
    );
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_come_back_byte_for_byte() {
    let (dp, _dir, _node) = setup().await;
    for id in [
        "123456789012345678901234567890",
        "1.50",
        "-0",
        r#""a\"b\u00e9""#,
        r#""""#,
        "null",
    ] {
        let body = format!(r#"{{"jsonrpc":"2.0","method":"eth_chainId","id":{id}}}"#);
        let r = post(&dp, "/eth", &body, &[]).await;
        assert_eq!(
            r.body,
            format!(r#"{{"jsonrpc":"2.0","id":{id},"result":"a"}}"#)
        );
        let batch = format!(r#"[{body},{body}]"#);
        let r = post(&dp, "/eth", &batch, &[]).await;
        let one = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":"a"}}"#);
        assert_eq!(r.body, format!("[{one},{one}]"));
    }
    dp.shutdown().await;
}
