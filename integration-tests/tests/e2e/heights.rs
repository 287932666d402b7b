//! Heights reach the data planes between snapshots (rule 8 of
//! snapshot.proto), and archive routing counts blocks from them.
//!
//! The upstreams stay at height 1000 while the leader (which only counts
//! for the network's reference height) moves to 1020, so every snapshot,
//! whatever else republishes one, says 1000 for each upstream: only the
//! `Heights` message can tell the data plane that block 1009 is now 11
//! blocks behind the head.

use meridian_integration_tests::harness::*;
use meridian_proto::v1::GetSnapshotRequest;
use meridian_test_kit::evm::MockEvmNode;
use meridian_test_kit::poll::eventually;
use meridian_test_kit::rpc::{RpcClient, request_body};

const NET: &str = "eth-heights";

fn balance_at(id: u64, block: u64) -> String {
    request_body(
        id,
        "eth_getBalance",
        &format!(r#"["0x0000000000000000000000000000000000000001","{block:#x}"]"#),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_just_past_the_archive_window_of_a_moving_head_goes_to_archive() {
    init_test_logs();
    let (leader, a, r) = (
        MockEvmNode::start_with(1000, 1).await,
        MockEvmNode::start_with(1000, 1).await,
        MockEvmNode::start_with(1000, 1).await,
    );
    let cp_dir = tempfile::tempdir().unwrap();
    let cp = start_control_plane(&control_toml(
        cp_dir.path(),
        &[NetworkSpec::new(NET)
            .leader(&leader.url())
            // Upstreams 20 blocks behind the leader stay healthy.
            .max_lag_blocks(1_000)
            .policy("archive_after_blocks", "10")
            .upstream("a", &a.url(), "eu")
            .upstream_with_roles("r", &r.url(), "eu", &["archive"])],
    ))
    .await;
    let dp_dir = tempfile::tempdir().unwrap();
    let dp = start_data_plane(&control_plane_url(&cp), "eu", dp_dir.path()).await;
    let mut admin = admin_client(&cp).await;
    wait_healthy(&mut admin, NET, &["a", "r"]).await;
    wait_in_sync(&cp, &dp).await;

    let client = RpcClient::new();
    let head_is = |h: u64| {
        let (client, dp) = (&client, &dp);
        let series = format!("meridian_network_head_height{{network=\"{NET}\"}}");
        async move { dp_metric(client, dp, &series).await == Some(h as f64) }
    };
    eventually("the data plane routes by head 1000", SETTLE, || {
        head_is(1000)
    })
    .await;
    let r_before = r.requests("eth_getBalance");
    let old = client
        .post(&network_url(&dp, NET), balance_at(1, 989))
        .await
        .unwrap();
    assert_eq!(
        (old.status, old.handled_by()),
        (200, Some("r")),
        "11 blocks behind 1000 is archive: {}",
        old.text()
    );

    leader.set_height(1020);
    eventually("the heights say 1020", SETTLE, || head_is(1020)).await;
    // No node reports a finalized block: 1020 minus EVM's depth of 64.
    let finalized = format!("meridian_network_finalized_height{{network=\"{NET}\"}}");
    eventually("the data plane knows 956 is final", SETTLE, || async {
        dp_metric(&client, &dp, &finalized).await == Some(956.0)
    })
    .await;
    let snapshot = admin
        .get_snapshot(GetSnapshotRequest {})
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    let snapshot_heads: Vec<u64> = snapshot.table.unwrap().networks[0]
        .upstreams
        .iter()
        .map(|u| u.head_height)
        .collect();
    assert_eq!(snapshot_heads, [1000, 1000], "no snapshot knows 1020");

    let url = network_url(&dp, NET);
    for (id, block, upstream, why) in [
        (2, 1009, "r", "1009 is 11 blocks behind 1020"),
        (
            3,
            1010,
            "a",
            "1010 is 10 blocks behind 1020, inside the window",
        ),
    ] {
        let read = client.post(&url, balance_at(id, block)).await.unwrap();
        assert_eq!(
            (read.status, read.handled_by()),
            (200, Some(upstream)),
            "{why}: {}",
            read.text()
        );
    }
    assert_eq!(r.requests("eth_getBalance"), r_before + 2);

    dp.shutdown().await;
    cp.shutdown().await;
}
