//! Health: lag hysteresis (in both directions) and chain-id quarantine.
//!
//! Hysteresis is checked by counting probes on the mock node, never by
//! wall time: [`MockEvmNode::set_height_at`] tells exactly which
//! `eth_blockNumber` calls saw the new height, so "the state flipped after
//! fewer than N probes saw the condition" is something a test can catch.

use meridian_integration_tests::harness::*;
use meridian_proto::v1::UpstreamState;
use meridian_test_kit::evm::MockEvmNode;
use meridian_test_kit::rpc::RpcClient;

const NET: &str = "eth-lag";
const UNHEALTHY_AFTER: u32 = 4;
const HEALTHY_AFTER: u32 = 3;

/// Polls the state of `upstream` until it is `target`. At every observation,
/// the node's probe count is read *after* the state, so it is at least the
/// number of probes the control plane had sent when it reported that state;
/// a state of `target` seen with fewer than `needed` probes since `mark`
/// means the flip came too early.
async fn watch_flip(
    admin: &mut meridian_proto::v1::admin_service_client::AdminServiceClient<
        tonic::transport::Channel,
    >,
    node: &MockEvmNode,
    upstream: &str,
    target: UpstreamState,
    mark: u64,
    needed: u32,
) -> String {
    let what = format!("{upstream} becomes {target:?}");
    let reason = std::sync::Mutex::new(String::new());
    eventually(&what, SETTLE, || {
        let mut admin = admin.clone();
        let reason = &reason;
        async move {
            let (state, why) = upstream_state(&mut admin, NET, upstream)
                .await
                .expect("the upstream is listed");
            let probes = node.requests("eth_blockNumber") - mark;
            if state == target {
                assert!(
                    probes >= u64::from(needed),
                    "{upstream} became {target:?} after only {probes} probe(s) saw the change \
                     (needs {needed}); reason {why:?}"
                );
                *reason.lock().unwrap() = why;
                return true;
            }
            false
        }
    })
    .await;
    reason.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_node_leaves_and_returns_only_after_hysteresis() {
    init_test_logs();
    let a = MockEvmNode::start_with(1_000, 1337).await;
    let b = MockEvmNode::start_with(1_000, 1337).await;
    let cp_dir = tempfile::tempdir().unwrap();
    let cp = start_control_plane(&control_toml(
        cp_dir.path(),
        &[NetworkSpec::new(NET)
            .max_lag_blocks(10)
            .healthy_after(HEALTHY_AFTER)
            .unhealthy_after(UNHEALTHY_AFTER)
            .upstream("a", &a.url(), "eu")
            .upstream("b", &b.url(), "us")],
    ))
    .await;
    let dp_dir = tempfile::tempdir().unwrap();
    let dp = start_data_plane(&control_plane_url(&cp), "eu", dp_dir.path()).await;
    let mut admin = admin_client(&cp).await;
    let client = RpcClient::new();
    wait_healthy(&mut admin, NET, &["a", "b"]).await;
    // The eu data plane prefers a, its own region's node.
    wait_handled_by(&client, &dp, NET, "a", SETTLE).await;

    // a falls 50 blocks behind b (the reference height).
    let mark = a.set_height_at(950);
    let reason = watch_flip(
        &mut admin,
        &a,
        "a",
        UpstreamState::Lagging,
        mark,
        UNHEALTHY_AFTER,
    )
    .await;
    assert!(!reason.is_empty(), "a lagging upstream says why");
    // Out of rotation: the eu data plane now sends eu traffic to b.
    wait_handled_by(&client, &dp, NET, "b", SETTLE).await;
    let before = a.client_requests();
    for _ in 0..10 {
        let r = read_through(&client, &dp, NET).await;
        assert_result(&r);
        assert_eq!(r.handled_by(), Some("b"));
    }
    assert_eq!(
        a.client_requests(),
        before,
        "a lagging node takes no traffic"
    );

    // a catches up: it must pass HEALTHY_AFTER probes before taking traffic.
    let mark = a.set_height_at(1_000);
    watch_flip(
        &mut admin,
        &a,
        "a",
        UpstreamState::Healthy,
        mark,
        HEALTHY_AFTER,
    )
    .await;
    wait_handled_by(&client, &dp, NET, "a", SETTLE).await;

    dp.shutdown().await;
    cp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_another_chain_is_quarantined_with_a_reason() {
    init_test_logs();
    let good = MockEvmNode::start_with(500, 1337).await;
    let wrong = MockEvmNode::start_with(500, 5).await;
    let cp_dir = tempfile::tempdir().unwrap();
    let cp = start_control_plane(&control_toml(
        cp_dir.path(),
        &[NetworkSpec::new(NET)
            .chain_id(1337)
            .upstream("good", &good.url(), "us")
            // Same region as the data plane: it would be preferred if it
            // were ever routable.
            .upstream("wrong", &wrong.url(), "eu")],
    ))
    .await;
    let dp_dir = tempfile::tempdir().unwrap();
    let dp = start_data_plane(&control_plane_url(&cp), "eu", dp_dir.path()).await;
    let mut admin = admin_client(&cp).await;
    wait_healthy(&mut admin, NET, &["good"]).await;
    let reason = std::sync::Mutex::new(String::new());
    eventually("the node on chain 5 is quarantined", SETTLE, || {
        let mut admin = admin.clone();
        let reason = &reason;
        async move {
            match upstream_state(&mut admin, NET, "wrong").await {
                Some((UpstreamState::Quarantined, why)) => {
                    *reason.lock().unwrap() = why;
                    true
                }
                _ => false,
            }
        }
    })
    .await;
    let reason = reason.into_inner().unwrap();
    let lower = reason.to_lowercase();
    assert!(
        lower.contains("chain") && (lower.contains('5') || lower.contains("0x5")),
        "the reason names the chain mismatch: {reason:?}"
    );

    let client = RpcClient::new();
    wait_handled_by(&client, &dp, NET, "good", SETTLE).await;
    for _ in 0..20 {
        let r = read_through(&client, &dp, NET).await;
        assert_result(&r);
        assert_eq!(r.handled_by(), Some("good"));
    }
    assert_eq!(
        wrong.client_requests(),
        0,
        "a quarantined node never takes traffic"
    );

    dp.shutdown().await;
    cp.shutdown().await;
}
