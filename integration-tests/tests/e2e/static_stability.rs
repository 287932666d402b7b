//! Static stability: losing the control plane stops change, never traffic.

use meridian_integration_tests::harness::*;
use meridian_proto::v1::UpstreamState;
use meridian_test_kit::evm::MockEvmNode;
use meridian_test_kit::rpc::RpcClient;

const NET: &str = "eth-static";

/// Whether the data plane's /metrics says it is connected (`1`) or not (`0`).
async fn control_plane_connected(
    client: &RpcClient,
    dp: &meridian_data_plane::app::DataPlane,
) -> Option<bool> {
    dp_metric(client, dp, "meridian_control_plane_connected")
        .await
        .map(|v| v == 1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_planes_keep_serving_when_the_control_plane_is_killed() {
    init_test_logs();
    let a = MockEvmNode::start().await;
    let b = MockEvmNode::start().await;
    let cp_dir = tempfile::tempdir().unwrap();
    let cp = start_control_plane(&control_toml(
        cp_dir.path(),
        &[NetworkSpec::new(NET)
            .upstream("a", &a.url(), "eu")
            .upstream("b", &b.url(), "us")],
    ))
    .await;
    let cp_url = control_plane_url(&cp);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let eu = start_data_plane(&cp_url, "eu", dirs[0].path()).await;
    let us = start_data_plane(&cp_url, "us", dirs[1].path()).await;
    let mut admin = admin_client(&cp).await;
    wait_healthy(&mut admin, NET, &["a", "b"]).await;
    let client = RpcClient::new();
    wait_handled_by(&client, &eu, NET, "a", SETTLE).await;
    wait_handled_by(&client, &us, NET, "b", SETTLE).await;
    let held = (wait_in_sync(&cp, &eu).await, wait_in_sync(&cp, &us).await);
    eventually(
        "the data plane reports a connected control plane",
        SETTLE,
        || async { control_plane_connected(&client, &eu).await == Some(true) },
    )
    .await;

    cp.shutdown().await;

    // The data planes notice (metrics) but keep serving the last snapshot.
    eventually(
        "the data plane notices the control plane is gone",
        SETTLE,
        || async { control_plane_connected(&client, &eu).await == Some(false) },
    )
    .await;
    for _ in 0..25 {
        for (dp, expected) in [(&eu, "a"), (&us, "b")] {
            let r = read_through(&client, dp, NET).await;
            assert_result(&r);
            assert_eq!(r.handled_by(), Some(expected));
        }
    }
    assert_eq!((eu.snapshot_version(), us.snapshot_version()), held);
    let ready = client.get(&dp_admin_url(&eu, "/ready")).await.unwrap();
    assert_eq!(ready.status, 200, "still ready without a control plane");

    eu.shutdown().await;
    us.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_plane_restarted_without_control_plane_serves_its_persisted_snapshot() {
    init_test_logs();
    let a = MockEvmNode::start().await;
    let cp_dir = tempfile::tempdir().unwrap();
    let cp = start_control_plane(&control_toml(
        cp_dir.path(),
        &[NetworkSpec::new(NET).upstream("a", &a.url(), "eu")],
    ))
    .await;
    let cp_url = control_plane_url(&cp);
    let state_dir = tempfile::tempdir().unwrap();
    let dp = start_data_plane(&cp_url, "eu", state_dir.path()).await;
    let mut admin = admin_client(&cp).await;
    wait_healthy(&mut admin, NET, &["a"]).await;
    let client = RpcClient::new();
    wait_handled_by(&client, &dp, NET, "a", SETTLE).await;
    let held = wait_in_sync(&cp, &dp).await;
    // Serving a version is not yet having persisted it: the ACK is.
    wait_acked(&mut admin, held).await;

    cp.shutdown().await;
    dp.shutdown().await;

    // Nothing listens at cp_url any more; the snapshot on disk is all it has.
    let dp = start_data_plane(&cp_url, "eu", state_dir.path()).await;
    // (Newer only if the control plane published again before it stopped.)
    assert!(
        dp.snapshot_version() >= held,
        "the persisted snapshot is loaded at start: held {held}, loaded {}",
        dp.snapshot_version()
    );
    let ready = client.get(&dp_admin_url(&dp, "/ready")).await.unwrap();
    assert_eq!(
        ready.status, 200,
        "ready at once from the persisted snapshot"
    );
    let before = a.client_requests();
    for _ in 0..10 {
        let r = read_through(&client, &dp, NET).await;
        assert_result(&r);
        assert_eq!(r.handled_by(), Some("a"));
    }
    assert_eq!(
        a.client_requests(),
        before + 10,
        "the reads reached the node"
    );

    // A data plane with an empty state dir and no control plane is not ready.
    let empty = tempfile::tempdir().unwrap();
    let fresh = start_data_plane(&cp_url, "eu", empty.path()).await;
    let ready = client.get(&dp_admin_url(&fresh, "/ready")).await.unwrap();
    assert_eq!(ready.status, 503, "no snapshot, not ready");
    let r = read_through(&client, &fresh, NET).await;
    assert_eq!(r.status, 503, "nothing to route with: {}", r.text());
    assert_eq!(r.header("x-rejected-by"), Some("unavailable"));
    assert_eq!(r.json()["error"]["code"], -32002, "{}", r.text());

    fresh.shutdown().await;
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_restart_does_not_interrupt_traffic() {
    init_test_logs();
    let a = MockEvmNode::start().await;
    let cp_dir = tempfile::tempdir().unwrap();
    let networks = [NetworkSpec::new(NET)
        .healthy_after(3)
        .upstream("a", &a.url(), "eu")];
    let cp = start_control_plane(&control_toml(cp_dir.path(), &networks)).await;
    let state_dir = tempfile::tempdir().unwrap();
    let dp = start_data_plane(&control_plane_url(&cp), "eu", state_dir.path()).await;
    let mut admin = admin_client(&cp).await;
    wait_healthy(&mut admin, NET, &["a"]).await;
    let client = RpcClient::new();
    wait_handled_by(&client, &dp, NET, "a", SETTLE).await;
    let before = dp.snapshot_version();
    let grpc = cp.grpc_addr();
    cp.shutdown().await;

    // The restarted control plane has not probed anything yet; the healthy
    // upstream the data plane serves with must not be withdrawn meanwhile.
    let cp = restart_control_plane(&control_toml_on(grpc, cp_dir.path(), &networks)).await;
    let mut admin = admin_client(&cp).await;
    let mut failures = Vec::new();
    let (mut reads, mut reads_at_new_version) = (0, 0);
    // Read through the whole hand-over: until the data plane holds the new
    // control plane's snapshot and has served reads with it, and the new
    // control plane has proven `a` healthy by its own probes.
    loop {
        let version = dp.snapshot_version();
        let r = read_through(&client, &dp, NET).await;
        if r.status != 200 || r.handled_by() != Some("a") {
            failures.push(format!(
                "read {reads} at version {version}: HTTP {} by {:?}: {}",
                r.status,
                r.handled_by(),
                r.text()
            ));
        }
        reads += 1;
        if version != before {
            reads_at_new_version += 1;
        }
        if reads >= 50
            && reads_at_new_version >= 10
            && upstream_state(&mut admin, NET, "a")
                .await
                .is_some_and(|(state, _)| state == UpstreamState::Healthy)
        {
            break;
        }
        assert!(
            reads < 3_000,
            "no hand-over after {reads} reads ({reads_at_new_version} at a new version)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(
        failures.is_empty(),
        "traffic was interrupted: {failures:#?}"
    );

    dp.shutdown().await;
    cp.shutdown().await;
}
