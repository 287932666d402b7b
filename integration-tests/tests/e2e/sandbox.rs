//! The sandbox starts, every data plane serves both networks, its lagging
//! node is kept out of rotation, and the lines it prints work.

use meridian_integration_tests::harness::*;
use meridian_integration_tests::sandbox::{
    ICON_NETWORK, NETWORK, REGIONS, Sandbox, SandboxOptions,
};
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
        let icon = sandbox.icon_url(region).unwrap();
        assert!(text.contains(&icon), "the printed text shows {icon}");
        let r = client.call(&icon, "icx_getLastBlock").await.unwrap();
        assert_result(&r);
    }
    assert!(
        text.contains("iconsdk") && text.contains(ICON_NETWORK),
        "{text}"
    );
    // The printed meridianctl line works.
    let args = sandbox.meridianctl_args();
    assert!(text.contains(&args.join(" ")), "{text}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_meridian-sandbox"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("--base-port"));
    let ctl = <meridian_control_plane::ctl::Cli as clap::Parser>::try_parse_from(
        std::iter::once("meridianctl".to_owned()).chain(args),
    )
    .expect("the printed meridianctl arguments parse");
    let listed = meridian_control_plane::ctl::run(&ctl)
        .await
        .expect("the printed meridianctl line works");
    assert!(
        listed.contains("node-eu") && listed.contains("goloop-eu"),
        "{listed}"
    );
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
