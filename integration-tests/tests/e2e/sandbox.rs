//! The sandbox starts, every data plane serves, and its lagging node is
//! kept out of rotation.

use meridian_integration_tests::harness::*;
use meridian_integration_tests::sandbox::{NETWORK, REGIONS, Sandbox, SandboxOptions};
use meridian_proto::v1::UpstreamState;
use meridian_test_kit::rpc::RpcClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_serves_in_every_region() {
    init_test_logs();
    let sandbox = Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts");
    let text = sandbox.describe();
    assert!(text.contains("curl "), "{text}");
    assert!(text.contains("meridianctl"), "{text}");

    let client = RpcClient::new();
    for region in REGIONS {
        let url = sandbox.data_plane_url(region).unwrap();
        assert!(text.contains(&url), "the printed text shows {url}");
        let r = client.call(&url, "eth_blockNumber").await.unwrap();
        assert_result(&r);
    }
    let mut admin = meridian_proto::v1::admin_service_client::AdminServiceClient::connect(
        sandbox.control_plane_url(),
    )
    .await
    .unwrap();
    eventually("the lagging node is out of rotation", SETTLE, || {
        let mut admin = admin.clone();
        async move {
            matches!(
                upstream_state(&mut admin, NETWORK, "node-ap-lagging").await,
                Some((UpstreamState::Lagging, _))
            )
        }
    })
    .await;
    wait_healthy(&mut admin, NETWORK, &["node-eu", "node-us"]).await;
    sandbox.shutdown().await;
}
