//! Bad client input is refused by the data plane itself, with a JSON-RPC
//! error body and `x-rejected-by`, and never reaches an upstream.

use meridian_integration_tests::harness::*;
use meridian_test_kit::evm::MockEvmNode;
use meridian_test_kit::rpc::{RpcClient, RpcResponse, request_body};

const NET: &str = "eth-bad";
/// The default body limit (1 MiB).
const DEFAULT_LIMIT: usize = 1024 * 1024;

/// Asserts a refusal by Meridian itself; `code` is checked when the issue
/// fixes it (-32700), otherwise any JSON-RPC error code is accepted.
fn assert_refused(r: &RpcResponse, status: u16, code: Option<i64>, what: &str) {
    assert_eq!(r.status, status, "{what}: HTTP status ({})", r.text());
    assert!(r.rejected_by().is_some(), "{what}: x-rejected-by is set");
    assert!(
        r.header("x-request-id").is_some(),
        "{what}: x-request-id is set"
    );
    let body = r.json();
    assert_eq!(body["jsonrpc"], "2.0", "{what}: {body}");
    assert!(
        body["error"]["code"].is_i64(),
        "{what}: an error code: {body}"
    );
    if let Some(code) = code {
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
    }
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: the error says why: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_never_reaches_an_upstream() {
    init_test_logs();
    let a = MockEvmNode::start().await;
    let small = MockEvmNode::start().await;
    let cp_dir = tempfile::tempdir().unwrap();
    let cp = start_control_plane(&control_toml(
        cp_dir.path(),
        &[
            NetworkSpec::new(NET).upstream("a", &a.url(), "eu"),
            NetworkSpec::new("eth-small").max_body_bytes(1024).upstream(
                "small",
                &small.url(),
                "eu",
            ),
        ],
    ))
    .await;
    let dp_dir = tempfile::tempdir().unwrap();
    let dp = start_data_plane(&control_plane_url(&cp), "eu", dp_dir.path()).await;
    let mut admin = admin_client(&cp).await;
    wait_healthy(&mut admin, NET, &["a"]).await;
    wait_healthy(&mut admin, "eth-small", &["small"]).await;
    let client = RpcClient::new();
    wait_handled_by(&client, &dp, NET, "a", SETTLE).await;
    wait_handled_by(&client, &dp, "eth-small", "small", SETTLE).await;
    let reached = (a.client_requests(), small.client_requests());

    // Over the default limit (1 MiB): a valid request padded past it. The
    // data plane answers 413 before reading the whole body, so it must say
    // `connection: close`: the same pooled client then keeps working.
    let padding = "0".repeat(DEFAULT_LIMIT);
    let big = request_body(1, "eth_getBalance", &format!(r#"["0x{padding}","latest"]"#));
    let r = client.post(network_url(&dp, NET), big).await.unwrap();
    assert_refused(&r, 413, None, "body over 1 MiB");
    assert_eq!(
        r.header("connection"),
        Some("close"),
        "413 closes the connection"
    );
    // Over a configured limit.
    let padding = "0".repeat(2048);
    let big = request_body(1, "eth_getBalance", &format!(r#"["0x{padding}","latest"]"#));
    let r = client
        .post(network_url(&dp, "eth-small"), big)
        .await
        .unwrap();
    assert_refused(&r, 413, None, "body over max_body_bytes");
    assert_eq!(
        r.header("connection"),
        Some("close"),
        "413 closes the connection"
    );
    // The pooled client goes on working (a refusal that never reaches an
    // upstream, so the counters below stay exact).
    let r = client
        .call(network_url(&dp, "no-such-network"), "eth_blockNumber")
        .await
        .unwrap();
    assert_eq!(r.status, 404, "the connection pool survived the 413s");

    // Malformed JSON.
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"eth_getBalance""#,
        "not json at all",
        r#"[{"jsonrpc":"2.0","id":1,"#,
    ] {
        let r = client
            .post(network_url(&dp, NET), body.to_owned())
            .await
            .unwrap();
        assert_refused(&r, 400, Some(-32700), "malformed JSON");
        assert_eq!(
            r.json()["id"],
            serde_json::Value::Null,
            "an unreadable id is null"
        );
    }

    // Unknown network.
    let r = client
        .post(
            format!("http://{}/no-such-network", dp.listen_addr()),
            request_body(1, "eth_getBalance", "[]"),
        )
        .await
        .unwrap();
    assert_refused(&r, 404, None, "unknown network");
    assert!(
        r.text().contains("no-such-network"),
        "the error names the network: {}",
        r.text()
    );

    // None of it reached a node; a good request afterwards still does.
    assert_eq!((a.client_requests(), small.client_requests()), reached);
    assert_result(&read_through(&client, &dp, NET).await);
    assert_eq!(a.client_requests(), reached.0 + 1);

    dp.shutdown().await;
    cp.shutdown().await;
}
