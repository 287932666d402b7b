//! The response cache through the real control plane and a data plane:
//! the head micro cache, finality, what is never cached, and that a hit
//! carries the asking client's own id.

use std::time::Duration;

use meridian_data_plane::app::DataPlane;
use meridian_integration_tests::harness::*;
use meridian_test_kit::evm::{Fault, MockEvmNode};
use meridian_test_kit::poll::eventually;
use meridian_test_kit::rpc::{RpcClient, RpcResponse, request_body};

const NET: &str = "eth-cache";
const TX: &str = r#"["0x00000000000000000000000000000000000000000000000000000000000000aa"]"#;

/// A control plane and a data plane with its cache on, for one network of
/// one upstream `a` (height 1000, finalized 900) with `head_ttl_ms`.
struct Fixture {
    node: MockEvmNode,
    dp: DataPlane,
    client: RpcClient,
    _cp: meridian_control_plane::app::ControlPlane,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Fixture {
    async fn start(head_ttl_ms: u64) -> Fixture {
        init_test_logs();
        let node = MockEvmNode::start_with(1000, 1).await;
        node.set_finalized(900);
        let cp_dir = tempfile::tempdir().unwrap();
        let cp = start_control_plane(&control_toml(
            cp_dir.path(),
            &[NetworkSpec::new(NET)
                .cache("head_ttl_ms", &head_ttl_ms.to_string())
                .upstream("a", &node.url(), "eu")],
        ))
        .await;
        let dp_dir = tempfile::tempdir().unwrap();
        let mut config = proxy_config(&control_plane_url(&cp), "eu", dp_dir.path());
        config.cache_max_bytes = 16 * 1024 * 1024;
        let dp = start_data_plane_with(config).await;
        let mut admin = admin_client(&cp).await;
        wait_healthy(&mut admin, NET, &["a"]).await;
        wait_in_sync(&cp, &dp).await;
        let fixture = Fixture {
            node,
            dp,
            client: RpcClient::new(),
            _cp: cp,
            _dirs: (cp_dir, dp_dir),
        };
        let finalized = format!("meridian_network_finalized_height{{network=\"{NET}\"}}");
        eventually("the data plane knows finalized 900", SETTLE, || async {
            dp_metric(&fixture.client, &fixture.dp, &finalized).await == Some(900.0)
        })
        .await;
        fixture
    }

    async fn call(&self, id: u64, method: &str, params: &str) -> RpcResponse {
        self.client
            .post(
                &network_url(&self.dp, NET),
                request_body(id, method, params),
            )
            .await
            .unwrap()
    }

    async fn metric(&self, series: &str) -> f64 {
        dp_metric(&self.client, &self.dp, series)
            .await
            .unwrap_or_else(|| panic!("no series {series} on /metrics"))
    }
}

fn cache_of(r: &RpcResponse) -> Option<&str> {
    r.header("x-cache")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answers_are_served_for_the_ttl_with_each_clients_id_then_asked_again() {
    let f = Fixture::start(2_000).await;
    let first = f.call(1, "eth_gasPrice", "[]").await;
    assert_eq!((first.status, cache_of(&first)), (200, Some("MISS")));
    assert_eq!(first.handled_by(), Some("a"));
    let second = f.call(77, "eth_gasPrice", "[]").await;
    assert_eq!(
        (second.status, cache_of(&second), second.handled_by()),
        (200, Some("HIT"), Some("meridian")),
        "{}",
        second.text()
    );
    assert_eq!(second.json()["id"], 77, "a hit carries the asker's id");
    assert_eq!(second.json()["result"], first.json()["result"]);
    assert_eq!(f.node.requests("eth_gasPrice"), 1, "one upstream request");
    let hits = format!("meridian_cache_hits_total{{network=\"{NET}\",class=\"head\"}}");
    assert_eq!(f.metric(&hits).await, 1.0);

    // Past the TTL the next call goes upstream again.
    eventually("a call past the TTL to go upstream", SETTLE, || async {
        cache_of(&f.call(3, "eth_gasPrice", "[]").await) == Some("MISS")
    })
    .await;
    assert_eq!(f.node.requests("eth_gasPrice"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_answer_outlives_its_node_and_an_unfinal_one_lives_only_for_the_ttl() {
    let f = Fixture::start(500).await;
    let final_block = r#"["0x384",false]"#; // 900: finalized
    let recent_block = r#"["0x3b6",false]"#; // 950: above it
    let final_answer = f.call(1, "eth_getBlockByNumber", final_block).await;
    assert_eq!(cache_of(&final_answer), Some("MISS"));
    assert_eq!(final_answer.json()["result"]["number"], "0x384");
    assert_eq!(
        cache_of(&f.call(2, "eth_getBlockByNumber", recent_block).await),
        Some("MISS")
    );
    // A receipt in a final block, asked with its hash in upper case: the
    // canonical key is the same.
    f.node.set_receipt_block(850);
    let receipt = f.call(3, "eth_getTransactionReceipt", TX).await;
    assert_eq!(cache_of(&receipt), Some("MISS"));

    f.node.kill();
    let again = f.call(4, "eth_getBlockByNumber", final_block).await;
    assert_eq!(
        (again.status, cache_of(&again)),
        (200, Some("HIT")),
        "{}",
        again.text()
    );
    assert_eq!(again.json()["result"], final_answer.json()["result"]);
    let upper = TX.replace("aa", "AA");
    let receipt_again = f.call(5, "eth_getTransactionReceipt", &upper).await;
    assert_eq!(
        cache_of(&receipt_again),
        Some("HIT"),
        "{}",
        receipt_again.text()
    );
    assert_eq!(receipt_again.json()["result"]["blockNumber"], "0x352");

    // The block above the finalized height is gone once the TTL has
    // passed: the node is down, so the call fails instead of a stale hit.
    eventually("the unfinal block to leave the cache", SETTLE, || async {
        let r = f.call(6, "eth_getBlockByNumber", recent_block).await;
        cache_of(&r) != Some("HIT") && r.json().get("error").is_some()
    })
    .await;
    let stale = format!("meridian_cache_stale_drops_total{{network=\"{NET}\",class=\"block\"}}");
    assert!(f.metric(&stale).await >= 1.0);
    // The final one is still there.
    let later = f.call(7, "eth_getBlockByNumber", final_block).await;
    assert_eq!(cache_of(&later), Some("HIT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_nulls_writes_and_pending_are_never_cached() {
    let f = Fixture::start(60_000).await;
    // Upstream calls of `method` for two identical client calls.
    let twice = |method: &'static str, params: &'static str| {
        let f = &f;
        async move {
            let before = f.node.requests(method);
            for id in 1..=2 {
                let r = f.call(id, method, params).await;
                assert_ne!(cache_of(&r), Some("HIT"), "{method}: {}", r.text());
            }
            f.node.requests(method) - before
        }
    };
    // The mock answers eth_getCode with a JSON-RPC error.
    assert_eq!(
        twice(
            "eth_getCode",
            r#"["0x0000000000000000000000000000000000000001","0x10"]"#
        )
        .await,
        2
    );
    // Not mined yet: null.
    assert_eq!(twice("eth_getTransactionReceipt", TX).await, 2);
    // Above the head: null.
    assert_eq!(
        twice("eth_getBlockByNumber", r#"["0x5000",false]"#).await,
        2
    );
    assert_eq!(
        twice("eth_getBlockByNumber", r#"["pending",false]"#).await,
        2
    );
    assert_eq!(twice("eth_sendRawTransaction", r#"["0x00"]"#).await, 2);
    // And once something is cached, a malformed request is still refused
    // before the cache: never a hit.
    let ok = f.call(1, "net_version", "[]").await;
    assert_eq!(cache_of(&ok), Some("MISS"));
    let bad = f
        .client
        .post(
            &network_url(&f.dp, NET),
            r#"{"jsonrpc":"2.0","id":1,"method":"net_version""#.to_owned(),
        )
        .await
        .unwrap();
    assert_eq!((bad.status, cache_of(&bad)), (400, None), "{}", bad.text());
    assert_eq!(cache_of(&f.call(2, "net_version", "[]").await), Some("HIT"));
    assert_eq!(f.node.requests("net_version"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_with_its_cache_off_sends_every_call() {
    init_test_logs();
    let node = MockEvmNode::start_with(1000, 1).await;
    let cp_dir = tempfile::tempdir().unwrap();
    let cp = start_control_plane(&control_toml(
        cp_dir.path(),
        &[NetworkSpec::new(NET)
            .cache("enabled", "false")
            .upstream("a", &node.url(), "eu")],
    ))
    .await;
    let dp_dir = tempfile::tempdir().unwrap();
    let mut config = proxy_config(&control_plane_url(&cp), "eu", dp_dir.path());
    config.cache_max_bytes = 1024 * 1024;
    let dp = start_data_plane_with(config).await;
    let mut admin = admin_client(&cp).await;
    wait_healthy(&mut admin, NET, &["a"]).await;
    wait_in_sync(&cp, &dp).await;
    let client = RpcClient::new();
    for id in 1..=3 {
        let r = client
            .post(
                &network_url(&dp, NET),
                request_body(id, "net_version", "[]"),
            )
            .await
            .unwrap();
        assert_eq!((r.status, cache_of(&r)), (200, None));
    }
    assert_eq!(node.requests("net_version"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_identical_calls_at_once_make_one_upstream_request() {
    let f = Fixture::start(1_000).await;
    // Slow enough that the calls overlap; late ones find the (final)
    // block in the cache, so the count is one whatever the timing.
    f.node.set_fault(Fault::Delay(Duration::from_millis(1_500)));
    let url = network_url(&f.dp, NET);
    let calls: Vec<_> = (0..1_000u64)
        .map(|id| {
            let (client, url) = (f.client.clone(), url.clone());
            tokio::spawn(async move {
                let body = request_body(10_000 + id, "eth_getBlockByNumber", r#"["0x320",false]"#);
                (id, client.post(&url, body).await.unwrap())
            })
        })
        .collect();
    let mut outcomes = std::collections::HashMap::<String, usize>::new();
    for call in calls {
        let (id, r) = call.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let json = r.json();
        assert_eq!(json["id"], 10_000 + id, "each gets its own id");
        assert_eq!(json["result"]["number"], "0x320");
        *outcomes
            .entry(cache_of(&r).unwrap_or("-").to_owned())
            .or_default() += 1;
    }
    f.node.set_fault(Fault::None);
    assert_eq!(f.node.requests("eth_getBlockByNumber"), 1, "{outcomes:?}");
    assert_eq!(outcomes.get("MISS"), Some(&1), "{outcomes:?}");
    assert!(
        outcomes.get("COALESCED").is_some_and(|n| *n > 0),
        "{outcomes:?}"
    );
    let coalesced = format!("meridian_cache_coalesced_total{{network=\"{NET}\",class=\"block\"}}");
    assert_eq!(
        f.metric(&coalesced).await as usize,
        outcomes["COALESCED"],
        "{outcomes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_does_not_cancel_the_call_for_the_others_and_errors_are_shared_not_kept()
 {
    let f = Fixture::start(60_000).await;
    f.node.set_fault(Fault::Delay(Duration::from_millis(800)));
    let url = network_url(&f.dp, NET);
    let body = request_body(1, "eth_getBlockByNumber", r#"["0x321",false]"#);
    // The first caller gives up (drops its request) while the call flies.
    let leaver = tokio::time::timeout(Duration::from_millis(200), f.client.post(&url, body)).await;
    assert!(leaver.is_err(), "the first caller hung up");
    let stayer = f
        .call(2, "eth_getBlockByNumber", r#"["0x321",false]"#)
        .await;
    assert_eq!(stayer.status, 200, "{}", stayer.text());
    assert_eq!(stayer.json()["id"], 2);
    assert_eq!(stayer.json()["result"]["number"], "0x321");
    assert_eq!(f.node.requests("eth_getBlockByNumber"), 1);

    // An error while waiters wait is theirs too, and is not kept.
    f.node.set_fault(Fault::Status(500));
    let (a, b) = tokio::join!(
        f.call(3, "eth_getBlockByNumber", r#"["0x322",false]"#),
        f.call(4, "eth_getBlockByNumber", r#"["0x322",false]"#),
    );
    for (r, id) in [(&a, 3), (&b, 4)] {
        assert_eq!(r.json()["id"], id);
        assert!(r.json().get("error").is_some(), "{}", r.text());
    }
    f.node.set_fault(Fault::None);
    let after = f
        .call(5, "eth_getBlockByNumber", r#"["0x322",false]"#)
        .await;
    assert_eq!(
        (after.status, cache_of(&after)),
        (200, Some("MISS")),
        "{}",
        after.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_elements_look_the_cache_up_one_by_one_and_only_misses_go_upstream() {
    let f = Fixture::start(60_000).await;
    assert_eq!(
        cache_of(&f.call(1, "net_version", "[]").await),
        Some("MISS")
    );
    let batch = r#"[
        {"jsonrpc":"2.0","id":"a","method":"net_version"},
        {"jsonrpc":"2.0","id":2,"method":"eth_getBlockByNumber","params":["0x320",false]},
        {"jsonrpc":"2.0","id":3,"method":"web3_clientVersion"}
    ]"#;
    let send = || f.client.post(network_url(&f.dp, NET), batch.to_owned());
    let first = send().await.unwrap();
    assert_eq!(
        (first.status, cache_of(&first)),
        (200, Some("HIT=1, MISS=1"))
    );
    let second = send().await.unwrap();
    assert_eq!(cache_of(&second), Some("HIT=2"), "{}", second.text());
    for r in [&first, &second] {
        let answers = r.json();
        let ids: Vec<_> = answers
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].clone())
            .collect();
        assert_eq!(ids, [serde_json::json!("a"), 2.into(), 3.into()]);
        assert_eq!(answers[0]["result"], "1");
        assert_eq!(answers[1]["result"]["number"], "0x320");
        assert_eq!(answers[2]["result"], "meridian-mock-evm/1");
    }
    assert_eq!(f.node.requests("net_version"), 1);
    assert_eq!(f.node.requests("eth_getBlockByNumber"), 1);
    assert_eq!(f.node.requests("web3_clientVersion"), 2, "never cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_hash_that_changes_drops_the_answers_of_its_height_and_above() {
    // A TTL far longer than the test: only the reorg can drop entries.
    let f = Fixture::start(600_000).await;
    let at = |height: u64, full: bool| format!(r#"["{height:#x}",{full}]"#);
    for (id, height) in [(1, 950), (2, 960), (3, 940)] {
        let r = f.call(id, "eth_getBlockByNumber", &at(height, false)).await;
        assert_eq!(cache_of(&r), Some("MISS"));
    }
    let before = f.call(4, "eth_getBlockByNumber", &at(950, false)).await;
    assert_eq!(cache_of(&before), Some("HIT"));

    // The node replaces its blocks; a call that misses (another key at
    // height 950) shows the new hash: the reorg signal.
    f.node.fork();
    let other = f.call(5, "eth_getBlockByNumber", &at(950, true)).await;
    assert_eq!(cache_of(&other), Some("MISS"));
    assert_ne!(
        other.json()["result"]["hash"],
        before.json()["result"]["hash"]
    );
    let reorgs = format!("meridian_cache_reorgs_total{{network=\"{NET}\"}}");
    assert_eq!(f.metric(&reorgs).await, 1.0);
    let drops = format!("meridian_cache_reorg_drops_total{{network=\"{NET}\"}}");
    assert_eq!(f.metric(&drops).await, 2.0, "950 and 960, not 940");

    // No answer of a replaced block is served again.
    let after = f.call(6, "eth_getBlockByNumber", &at(950, false)).await;
    assert_eq!(cache_of(&after), Some("MISS"));
    assert_eq!(
        after.json()["result"]["hash"],
        other.json()["result"]["hash"]
    );
    assert_eq!(
        cache_of(&f.call(7, "eth_getBlockByNumber", &at(960, false)).await),
        Some("MISS")
    );
    assert_eq!(
        cache_of(&f.call(8, "eth_getBlockByNumber", &at(940, false)).await),
        Some("HIT"),
        "below the reorg"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_shows_the_cache_per_network() {
    let f = Fixture::start(60_000).await;
    for id in 1..=3 {
        f.call(id, "net_version", "[]").await;
    }
    let r = f.client.get(dp_admin_url(&f.dp, "/cache")).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let view = r.json();
    assert_eq!(view["enabled"], true);
    assert_eq!(view["max_bytes"], 16 * 1024 * 1024);
    assert!(view["bytes"].as_u64().unwrap() > 0, "{view}");
    assert_eq!(view["entries"], 1);
    let net = &view["networks"][0];
    assert_eq!(net["id"], NET);
    assert_eq!(net["finalized_height"], 900);
    assert_eq!(net["head_ttl_ms"], 60_000);
    let s = &net["classes"]["static"];
    assert_eq!(
        (s["hits"].as_u64(), s["misses"].as_u64()),
        (Some(2), Some(1)),
        "{view}"
    );
    assert!((s["hit_ratio"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(net["classes"]["head"]["hit_ratio"], serde_json::Value::Null);
}
