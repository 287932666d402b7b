//! Snapshots reach every data plane, and versions only ever increase.

use meridian_integration_tests::harness::*;
use meridian_proto::v1::GetSnapshotRequest;
use meridian_test_kit::evm::MockEvmNode;
use meridian_test_kit::rpc::RpcClient;

const NET: &str = "eth-local";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_reaches_three_data_planes_and_they_serve() {
    init_test_logs();
    let (eu, us, ap) = (
        MockEvmNode::start().await,
        MockEvmNode::start().await,
        MockEvmNode::start().await,
    );
    let cp_dir = tempfile::tempdir().unwrap();
    let cp = start_control_plane(&control_toml(
        cp_dir.path(),
        &[NetworkSpec::new(NET)
            .upstream("node-eu", &eu.url(), "eu")
            .upstream("node-us", &us.url(), "us")
            .upstream("node-ap", &ap.url(), "ap")],
    ))
    .await;
    let cp_url = control_plane_url(&cp);
    let mut admin = admin_client(&cp).await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let regions = ["eu", "us", "ap"];
    let mut dps = Vec::new();
    for (region, dir) in regions.iter().zip(&dirs) {
        dps.push(start_data_plane(&cp_url, region, dir.path()).await);
    }
    wait_healthy(&mut admin, NET, &["node-eu", "node-us", "node-ap"]).await;

    let client = RpcClient::new();
    for (dp, region) in dps.iter().zip(regions) {
        wait_in_sync(&cp, dp).await;
        // Each data plane prefers the upstream of its own region.
        wait_handled_by(&client, dp, NET, &format!("node-{region}"), SETTLE).await;
        let ready = client.get(&dp_admin_url(dp, "/ready")).await.unwrap();
        assert_eq!(ready.status, 200, "a data plane with a snapshot is ready");
    }
    for node in [&eu, &us, &ap] {
        assert!(
            node.client_requests() > 0,
            "every region's node served its region"
        );
    }

    // The control plane knows all three, with the versions they ACKed.
    eventually(
        "three data planes ACKed the current version",
        SETTLE,
        || {
            let mut admin = admin.clone();
            let cp = &cp;
            async move {
                let current: meridian_proto::v1::Version = cp.current_version().into();
                let dps = list_data_planes(&mut admin).await;
                dps.len() == 3
                    && dps
                        .iter()
                        .all(|d| d.connected && d.acked_version == Some(current))
                    && regions.iter().all(|r| dps.iter().any(|d| d.region == *r))
            }
        },
    )
    .await;

    for dp in dps {
        dp.shutdown().await;
    }
    cp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_keep_increasing_across_a_control_plane_restart() {
    init_test_logs();
    let node = MockEvmNode::start().await;
    let cp_dir = tempfile::tempdir().unwrap();
    let dp_dir = tempfile::tempdir().unwrap();
    let networks = [NetworkSpec::new(NET).upstream("a", &node.url(), "eu")];
    let cp = start_control_plane(&control_toml(cp_dir.path(), &networks)).await;
    let cp_url = control_plane_url(&cp);
    let dp = start_data_plane(&cp_url, "eu", dp_dir.path()).await;
    let mut admin = admin_client(&cp).await;
    wait_healthy(&mut admin, NET, &["a"]).await;
    let before = wait_in_sync(&cp, &dp).await;
    let grpc = cp.grpc_addr();
    cp.shutdown().await;

    // Same data_dir and port: the persisted epoch must move forward, and
    // the data plane (never restarted) must follow.
    let cp = restart_control_plane(&control_toml_on(grpc, cp_dir.path(), &networks)).await;
    eventually("the restarted control plane publishes", SETTLE, || async {
        !cp.current_version().is_none()
    })
    .await;
    let after = cp.current_version();
    assert!(after > before, "version went from {before} to {after}");
    assert!(
        after.epoch > before.epoch,
        "epoch not bumped: {before} → {after}"
    );
    let mut admin = admin_client(&cp).await;
    let published = admin
        .get_snapshot(GetSnapshotRequest {})
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .expect("a published snapshot");
    let published: meridian_common::snapshot::Version = published.version.into();
    assert!(
        published > before,
        "GetSnapshot shows {published}, held {before}"
    );

    let synced = wait_in_sync(&cp, &dp).await;
    assert!(
        synced > before,
        "the data plane moved from {before} to {synced}"
    );
    assert_result(&read_through(&RpcClient::new(), &dp, NET).await);

    dp.shutdown().await;
    cp.shutdown().await;
}
