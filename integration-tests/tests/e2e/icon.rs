//! An ICON network end to end, through the real planes, against mock goloop
//! nodes: probes read ICON's own head and network id, a node of another
//! ICON network is quarantined with the reason, a lagging node leaves
//! rotation, reads fail over when a node dies, a node's failed single call
//! keeps goloop's HTTP 400 with the client's id, and a write is never
//! retried.

use std::time::Duration;

use meridian_integration_tests::harness::*;
use meridian_integration_tests::python::run_client;
use meridian_proto::v1::UpstreamState;
use meridian_test_kit::icon::{CHANNEL, Fault, MockIconNode, PRep};
use meridian_test_kit::rpc::RpcClient;
use serde_json::{Value, json};

const NET: &str = "icon-main";

fn icx(id: u64, method: &str, params: Value) -> String {
    let mut call = json!({"jsonrpc": "2.0", "id": id, "method": method});
    if !params.is_null() {
        call["params"] = params;
    }
    call.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_icon_network_probes_routes_fails_over_and_quarantines_another_network() {
    init_test_logs();
    let a = MockIconNode::start(1_000, 1);
    let b = MockIconNode::start(1_000, 1);
    // A node of another ICON network (the Lisbon test net, nid 2).
    let other = MockIconNode::start(1_000, 2);
    let cp_dir = tempfile::tempdir().unwrap();
    let cp = start_control_plane(&control_toml(
        cp_dir.path(),
        &[NetworkSpec::new(NET)
            .chain("icon")
            .chain_id(1)
            // The hung write below ends at this deadline.
            .policy("request_timeout_ms", "2000")
            .upstream("a", &a.url(), "eu")
            .upstream("b", &b.url(), "us")
            .upstream("other", &other.url(), "eu")],
    ))
    .await;
    let dp_dir = tempfile::tempdir().unwrap();
    let dp = start_data_plane(&control_plane_url(&cp), "eu", dp_dir.path()).await;
    let mut admin = admin_client(&cp).await;
    wait_healthy(&mut admin, NET, &["a", "b"]).await;

    let (state, reason) = upstream_state(&mut admin, NET, "other").await.unwrap();
    assert_eq!(state, UpstreamState::Quarantined, "{reason}");
    assert!(
        reason.contains('2') && reason.contains('1'),
        "names both ids: {reason}"
    );
    assert_eq!(
        other.client_requests(),
        0,
        "a quarantined node gets no client call"
    );

    let client = RpcClient::new();
    let url = network_url(&dp, NET);
    // The region's own node answers reads, the client's id comes back.
    eventually("a read answered by a", SETTLE, || async {
        let r = client
            .post(&url, icx(7, "icx_getLastBlock", Value::Null))
            .await
            .unwrap();
        r.status == 200 && r.handled_by() == Some("a")
    })
    .await;
    let r = client
        .post(
            &url,
            icx(
                8,
                "icx_getBalance",
                json!({"address": "hx0000000000000000000000000000000000000001"}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["id"], 8);
    assert_eq!(r.json()["result"], meridian_test_kit::icon::MOCK_BALANCE);
    let r = client
        .post(&url, icx(9, "icx_getLastBlock", Value::Null))
        .await
        .unwrap();
    assert_eq!(
        r.json()["result"]["height"],
        1_000,
        "ICON's height, a JSON number"
    );

    // goloop answers a failed single call with HTTP 400 and a JSON body:
    // that shape reaches the client (iconsdk reads `result` only from a
    // 2xx), with the client's own id, and is not a failed try.
    let r = client
        .post(
            &url,
            icx(10, "icx_getBlockByHeight", json!({"height": "0x7d0"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        (r.json()["id"].clone(), r.json()["error"]["code"].clone()),
        (json!(10), json!(-31004))
    );
    assert_eq!(
        r.header("x-meridian-tries"),
        Some("1"),
        "a node's answer, not retried"
    );

    // A write whose node hangs is not sent again elsewhere.
    a.set_fault(Fault::Hang);
    let sent_before = b.requests("icx_sendTransaction");
    let tx = icx(
        11,
        "icx_sendTransaction",
        json!({"version": "0x3", "from": "hx01", "to": "hx02", "nid": "0x1", "signature": "c2ln"}),
    );
    let r = tokio::time::timeout(Duration::from_secs(30), client.post(&url, tx))
        .await
        .expect("the write is answered within its deadline")
        .unwrap();
    assert_ne!(r.status, 200, "{}", r.text());
    assert_eq!(a.requests("icx_sendTransaction"), 1);
    assert_eq!(
        b.requests("icx_sendTransaction"),
        sent_before,
        "never duplicated"
    );

    // a dies: reads go to b without a client-visible error.
    a.set_fault(Fault::None);
    a.kill();
    for i in 0..20 {
        let r = client
            .post(&url, icx(100 + i, "icx_getTotalSupply", Value::Null))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "read {i}: {}", r.text());
        assert_eq!(r.handled_by(), Some("b"));
    }

    // b falls far behind a restarted a: it leaves rotation for lag.
    a.restart().await.unwrap();
    a.set_height(5_000);
    eventually("b is lagging", SETTLE, || {
        let mut admin = admin.clone();
        async move {
            matches!(
                upstream_state(&mut admin, NET, "b").await,
                Some((UpstreamState::Lagging, reason)) if reason.contains("behind")
            )
        }
    })
    .await;
    dp.shutdown().await;
    cp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iconsdk_works_at_a_networks_own_address_and_channel_paths_reach_the_node() {
    init_test_logs();
    let node = std::sync::Arc::new(MockIconNode::start(2_000, 1));
    node.set_preps(vec![PRep {
        address: "hx1000000000000000000000000000000000000001".into(),
        name: "meridian-test-prep".into(),
        grade: "0x0".into(),
        status: "0x0".into(),
        p2p_endpoint: "127.0.0.1:7100".into(),
        node_address: "hx2000000000000000000000000000000000000002".into(),
    }]);
    let cp_dir = tempfile::tempdir().unwrap();
    let cp = start_control_plane(&control_toml(
        cp_dir.path(),
        &[NetworkSpec::new(NET)
            .chain("icon")
            .chain_id(1)
            .host("icon.example.org")
            .upstream("a", &node.url(), "eu")],
    ))
    .await;
    let dp_dir = tempfile::tempdir().unwrap();
    let mut config = proxy_config(&control_plane_url(&cp), "eu", dp_dir.path());
    config.network_listen = vec![(NET.to_owned(), "127.0.0.1:0".parse().unwrap())];
    let dp = start_data_plane_with(config).await;
    let mut admin = admin_client(&cp).await;
    wait_healthy(&mut admin, NET, &["a"]).await;
    let own = dp.network_addr(NET).expect("the network's own listener");
    let client = RpcClient::new();
    eventually("the network's own address serves", SETTLE, || async {
        client
            .post(
                format!("http://{own}/api/v3"),
                icx(1, "icx_getLastBlock", Value::Null),
            )
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await;

    // The channel path reaches the node as it is, from both addresses.
    let channel = format!("/api/v3/{CHANNEL}");
    let at_channel = node.requests_at(&channel);
    for url in [
        format!("http://{own}{channel}"),
        format!("{}{channel}", network_url(&dp, NET)),
    ] {
        let r = client
            .post(&url, icx(2, "icx_getTotalSupply", Value::Null))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{url}: {}", r.text());
    }
    // The shared listener serves the network at its host name too, at the
    // root of the address.
    let r = client
        .post_with_headers(
            format!("http://{}{channel}", dp.listen_addr()),
            icx(2, "icx_getTotalSupply", Value::Null),
            &[("host", "ICON.example.org:8545")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "by host name: {}", r.text());
    assert_eq!(node.requests_at(&channel), at_channel + 3);
    // Paths that are not goloop's never reach the node.
    let before = node.total_requests();
    for url in [
        format!("http://{own}/admin"),
        format!("http://{own}/api/v3/a/b"),
        format!("{}/api/v2", network_url(&dp, NET)),
    ] {
        let r = client
            .post(&url, icx(3, "icx_getTotalSupply", Value::Null))
            .await
            .unwrap();
        assert_eq!(r.status, 404, "{url}: {}", r.text());
        assert_eq!(r.header("x-rejected-by"), Some("path"), "{url}");
    }
    assert_eq!(node.total_requests(), before, "refused before any upstream");

    // iconsdk, unpatched, at the network's own address (it refuses a
    // gateway prefix itself). The node mines what is sent as its head
    // moves.
    let miner = {
        let node = node.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                node.advance(1);
            }
        })
    };
    let run = run_client(
        "icon_client.py",
        &[format!("http://{own}/api/v3/{CHANNEL}"), "2000".into()],
        Duration::from_secs(300),
    )
    .await
    .unwrap_or_else(|e| panic!("iconsdk is required for this test: {e}"));
    miner.abort();
    assert!(
        run.success,
        "iconsdk failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    for step in [
        "get_block(latest)",
        "get_block(height)",
        "get_balance",
        "get_total_supply",
        "getPReps meridian-test-prep 127.0.0.1:7100",
        "get_block(missing) -31004",
        "send_transaction",
        "get_transaction_result",
    ] {
        assert!(run.stdout.contains(step), "{step} missing:\n{}", run.stdout);
    }
    assert_eq!(node.requests("icx_sendTransaction"), 1, "sent once");
    dp.shutdown().await;
    cp.shutdown().await;
}
