//! The upstream serving a stream of reads dies mid-stream: the client sees
//! no error, because reads are retried once on another upstream.

use std::time::Duration;

use meridian_integration_tests::harness::*;
use meridian_test_kit::evm::{Fault, MockEvmNode};
use meridian_test_kit::rpc::{RpcClient, request_body};

const NET: &str = "eth-failover";
const READS: usize = 200;
const KILL_AT: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_selected_upstream_mid_stream_shows_no_client_error() {
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
    let dp_dir = tempfile::tempdir().unwrap();
    let dp = start_data_plane(&control_plane_url(&cp), "eu", dp_dir.path()).await;
    let mut admin = admin_client(&cp).await;
    wait_healthy(&mut admin, NET, &["a", "b"]).await;
    let client = RpcClient::new();
    wait_handled_by(&client, &dp, NET, "a", SETTLE).await;

    let url = network_url(&dp, NET);
    let mut failures = Vec::new();
    let mut handled_after_kill = Vec::new();
    for i in 0..READS {
        let body = request_body(
            i as u64,
            "eth_getBalance",
            r#"["0x0000000000000000000000000000000000000001","latest"]"#,
        );
        let response = if i == KILL_AT {
            // Kill a while this very request is in flight on it: the node
            // has the request, then its connections are torn down.
            a.set_fault(Fault::Delay(Duration::from_secs(5)));
            let seen = a.requests("eth_getBalance");
            let request = {
                let client = client.clone();
                let url = url.clone();
                tokio::spawn(async move { client.post(&url, body).await })
            };
            eventually("the read reaches a", SETTLE, || async {
                a.requests("eth_getBalance") > seen
            })
            .await;
            a.kill();
            request.await.unwrap()
        } else {
            client.post(&url, body).await
        };
        match response {
            Ok(r) if r.status == 200 && r.json().get("result").is_some() => {
                assert_eq!(r.json()["id"], i, "ids are echoed");
                if i >= KILL_AT {
                    handled_after_kill.push(r.handled_by().unwrap_or_default().to_owned());
                }
            }
            Ok(r) => failures.push(format!("read {i}: HTTP {} {}", r.status, r.text())),
            Err(e) => failures.push(format!("read {i}: {e}")),
        }
    }
    assert!(failures.is_empty(), "client-visible errors: {failures:#?}");
    assert!(
        handled_after_kill.iter().all(|h| h == "b"),
        "after the kill every read was answered by b: {handled_after_kill:?}"
    );
    assert!(b.client_requests() >= (READS - KILL_AT) as u64);

    dp.shutdown().await;
    cp.shutdown().await;
}
