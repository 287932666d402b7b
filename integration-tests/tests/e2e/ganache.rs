//! Against a real EVM node: ganache, installed from npm on first use.

use meridian_integration_tests::ganache::{GANACHE_CHAIN_ID, Ganache};
use meridian_integration_tests::harness::*;
use meridian_test_kit::rpc::RpcClient;

const NET: &str = "eth-ganache";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_plane_proxies_to_a_real_ganache_node() {
    init_test_logs();
    let ganache = Ganache::start()
        .await
        .unwrap_or_else(|e| panic!("this test needs ganache (Node.js + npm): {e}"));
    let cp_dir = tempfile::tempdir().unwrap();
    let cp = start_control_plane(&control_toml(
        cp_dir.path(),
        // A real node is slower than a mock, the more so on a loaded
        // machine: probe it less often, with a long deadline.
        &[NetworkSpec::new(NET)
            .chain_id(GANACHE_CHAIN_ID)
            .probe_interval_ms(250)
            .probe_timeout_ms(3_000)
            .unhealthy_after(3)
            .upstream("ganache", &ganache.url(), "eu")],
    ))
    .await;
    let dp_dir = tempfile::tempdir().unwrap();
    let dp = start_data_plane(&control_plane_url(&cp), "eu", dp_dir.path()).await;
    let mut admin = admin_client(&cp).await;
    wait_healthy(&mut admin, NET, &["ganache"]).await;
    let client = RpcClient::new();
    // Healthy in the control plane is not yet published: wait for traffic.
    wait_handled_by(&client, &dp, NET, "ganache", SETTLE).await;

    for method in ["eth_chainId", "eth_blockNumber", "net_version"] {
        let direct = client.call(&ganache.url(), method).await.unwrap();
        let proxied = client.call(&network_url(&dp, NET), method).await.unwrap();
        assert_result(&proxied);
        assert_eq!(proxied.handled_by(), Some("ganache"));
        assert_eq!(
            proxied.json()["result"],
            direct.json()["result"],
            "{method} through the proxy matches ganache"
        );
    }
    assert_eq!(
        client
            .call(&network_url(&dp, NET), "eth_chainId")
            .await
            .unwrap()
            .json()["result"],
        format!("0x{GANACHE_CHAIN_ID:x}")
    );

    // Ids ganache cannot hold (it parses them as doubles), in one batch:
    // Meridian sends its own small ids and puts the client's back byte for
    // byte, so every element is answered.
    let ids = ["12345678901234567890", r#""big \"quoted\" é""#, "-1.5"];
    let batch = format!(
        "[{}]",
        ids.iter()
            .map(|id| format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"eth_chainId","params":[]}}"#
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
    let proxied = client.post(network_url(&dp, NET), batch).await.unwrap();
    let text = proxied.text();
    let answers: Vec<&serde_json::value::RawValue> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(answers.len(), ids.len(), "{text}");
    let chain_id = format!(r#""0x{GANACHE_CHAIN_ID:x}""#);
    for (answer, id) in answers.iter().zip(ids) {
        let answer = answer.get();
        assert!(
            answer.contains(&format!(r#""id":{id}"#)),
            "the client's id {id} comes back as written: {text}"
        );
        assert!(
            answer.contains(&format!(r#""result":{chain_id}"#)),
            "{id} is answered: {text}"
        );
    }

    let (state, _) = upstream_state(&mut admin, NET, "ganache").await.unwrap();
    assert_eq!(state, meridian_proto::v1::UpstreamState::Healthy);

    dp.shutdown().await;
    cp.shutdown().await;
}
