//! The shared cache tier through a real `redis-server`: two proxies of one
//! region share immutable answers, Redis killed mid-run loses no request
//! (the breaker opens and closes again when it is back), and garbage under
//! a key is a miss, never an error to the client.

use std::time::Duration;

use meridian_data_plane::app::DataPlane;
use meridian_data_plane::config::SharedTierOptions;
use meridian_integration_tests::harness::*;
use meridian_integration_tests::redis_server::RedisServer;
use meridian_test_kit::evm::MockEvmNode;
use meridian_test_kit::poll::eventually;
use meridian_test_kit::rpc::{RpcClient, RpcResponse, request_body};

const NET: &str = "eth-shared";

/// A region: one Redis, one upstream `a` (height 1000, finalized 900) and
/// `proxies` data planes sharing the Redis.
struct Region {
    redis: RedisServer,
    node: MockEvmNode,
    dps: Vec<DataPlane>,
    client: RpcClient,
    _cp: meridian_control_plane::app::ControlPlane,
    _dirs: Vec<tempfile::TempDir>,
}

impl Region {
    async fn start(proxies: usize, tier: impl Fn(String) -> SharedTierOptions) -> Region {
        init_test_logs();
        let redis = RedisServer::start().await;
        let node = MockEvmNode::start_with(1000, 1).await;
        node.set_finalized(900);
        let cp_dir = tempfile::tempdir().unwrap();
        let cp = start_control_plane(&control_toml(
            cp_dir.path(),
            &[NetworkSpec::new(NET)
                .cache("redis_ttl_s", "600")
                .upstream("a", &node.url(), "eu")],
        ))
        .await;
        let mut admin = admin_client(&cp).await;
        wait_healthy(&mut admin, NET, &["a"]).await;
        let mut dirs = vec![cp_dir];
        let mut dps = Vec::new();
        for _ in 0..proxies {
            let dir = tempfile::tempdir().unwrap();
            let mut config = proxy_config(&control_plane_url(&cp), "eu", dir.path());
            config.cache_max_bytes = 16 * 1024 * 1024;
            config.cache_redis = Some(tier(redis.url()));
            let dp = start_data_plane_with(config).await;
            wait_in_sync(&cp, &dp).await;
            dps.push(dp);
            dirs.push(dir);
        }
        let region = Region {
            redis,
            node,
            dps,
            client: RpcClient::new(),
            _cp: cp,
            _dirs: dirs,
        };
        let finalized = format!("meridian_network_finalized_height{{network=\"{NET}\"}}");
        for dp in &region.dps {
            eventually("the data plane knows finalized 900", SETTLE, || async {
                dp_metric(&region.client, dp, &finalized).await == Some(900.0)
            })
            .await;
        }
        region
    }

    async fn call(&self, dp: usize, id: u64, method: &str, params: &str) -> RpcResponse {
        self.client
            .post(
                &network_url(&self.dps[dp], NET),
                request_body(id, method, params),
            )
            .await
            .unwrap()
    }

    async fn metric(&self, dp: usize, series: &str) -> f64 {
        dp_metric(&self.client, &self.dps[dp], series)
            .await
            .unwrap_or_else(|| panic!("no series {series} on /metrics"))
    }

    async fn wait_writes(&self, dp: usize, at_least: f64) {
        eventually("writes to reach redis", SETTLE, || async {
            self.metric(dp, "meridian_cache_redis_writes_total").await >= at_least
        })
        .await;
    }
}

/// Lookups under generous timeouts: a debug build on a busy CI core may
/// take more than the production 20 ms, and a timeout here would be a miss
/// that makes the test flaky rather than wrong.
fn patient(url: String) -> SharedTierOptions {
    let mut tier = SharedTierOptions::new(url);
    tier.timeout = Duration::from_millis(500);
    tier
}

fn block(height: u64) -> String {
    format!(r#"["{height:#x}",false]"#)
}

fn cache_of(r: &RpcResponse) -> Option<&str> {
    r.header("x-cache")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_of_a_region_share_only_immutable_answers() {
    let r = Region::start(2, patient).await;
    // Proxy 0 asks: a static answer, a final block, an unfinal block and a
    // head answer.
    for (method, params) in [
        ("eth_chainId", "[]".to_owned()),
        ("eth_getBlockByNumber", block(850)),
        ("eth_getBlockByNumber", block(950)),
        ("eth_blockNumber", "[]".to_owned()),
    ] {
        let first = r.call(0, 1, method, &params).await;
        assert_eq!(cache_of(&first), Some("MISS"), "{method}: {}", first.text());
    }
    r.wait_writes(0, 2.0).await;
    let keys = r.redis.keys("meridian:*").await;
    assert_eq!(
        keys.len(),
        2,
        "only the static and the final answer: {keys:?}"
    );
    for key in &keys {
        let ttl = r
            .redis
            .command(&["TTL", std::str::from_utf8(key).unwrap()])
            .await
            .unwrap();
        assert!(
            matches!(ttl, redis::Value::Int(t) if t > 0 && t <= 600),
            "redis_ttl_s bounds every entry: {ttl:?}"
        );
    }

    // Proxy 1 has never seen them: the final ones come from Redis, with
    // the asker's id, and no upstream request.
    let blocks_before = r.node.requests("eth_getBlockByNumber");
    let chain_id = r.call(1, 42, "eth_chainId", "[]").await;
    assert_eq!(
        (cache_of(&chain_id), chain_id.handled_by()),
        (Some("HIT-REDIS"), Some("meridian")),
        "{}",
        chain_id.text()
    );
    assert_eq!(chain_id.json()["id"], 42);
    assert_eq!(chain_id.json()["result"], "0x1");
    let final_block = r.call(1, 43, "eth_getBlockByNumber", &block(850)).await;
    assert_eq!(cache_of(&final_block), Some("HIT-REDIS"));
    assert_eq!(final_block.json()["result"]["number"], "0x352");
    assert_eq!(r.node.requests("eth_getBlockByNumber"), blocks_before);
    // Now in proxy 1's memory.
    let again = r.call(1, 44, "eth_getBlockByNumber", &block(850)).await;
    assert_eq!(cache_of(&again), Some("HIT"));
    // The unfinal block was not shared.
    let unfinal = r.call(1, 45, "eth_getBlockByNumber", &block(950)).await;
    assert_eq!(cache_of(&unfinal), Some("MISS"));
    let hits = format!("meridian_cache_redis_hits_total{{network=\"{NET}\",class=\"block\"}}");
    assert_eq!(r.metric(1, &hits).await, 1.0);

    // A batch looks the misses up in one round trip: two final blocks proxy
    // 0 kept, one it did not.
    let batch = |heights: &[u64]| {
        let calls: Vec<String> = heights
            .iter()
            .enumerate()
            .map(|(i, h)| request_body(i as u64 + 1, "eth_getBlockByNumber", &block(*h)))
            .collect();
        format!("[{}]", calls.join(","))
    };
    let url = |dp: usize| network_url(&r.dps[dp], NET);
    let kept = r.client.post(&url(0), batch(&[800, 801])).await.unwrap();
    assert_eq!(cache_of(&kept), Some("MISS=2"), "{}", kept.text());
    r.wait_writes(0, 4.0).await;
    let before = r.node.requests("eth_getBlockByNumber");
    let shared = r
        .client
        .post(&url(1), batch(&[800, 801, 802]))
        .await
        .unwrap();
    assert_eq!(
        cache_of(&shared),
        Some("HIT-REDIS=2, MISS=1"),
        "{}",
        shared.text()
    );
    let answers = shared.json();
    let numbers: Vec<&str> = (0..3)
        .map(|i| answers[i]["result"]["number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["0x320", "0x321", "0x322"], "in order");
    assert_eq!(r.node.requests("eth_getBlockByNumber"), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_loses_no_request_and_the_breaker_opens_and_closes() {
    let mut r = Region::start(1, |url| {
        let mut tier = SharedTierOptions::new(url);
        tier.timeout = Duration::from_millis(200);
        tier.breaker_cooldown = Duration::from_millis(300);
        tier
    })
    .await;
    // Clients keep asking for final blocks, each new to the proxy's memory
    // (so each asks Redis first), while Redis is killed and restarted.
    let load = {
        let url = network_url(&r.dps[0], NET);
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let client = RpcClient::new();
            let mut served = 0u64;
            let mut height = 1u64;
            while !*stop.borrow() {
                let response = client
                    .post(
                        &url,
                        request_body(height, "eth_getBlockByNumber", &block(height)),
                    )
                    .await
                    .unwrap();
                assert_eq!(response.status, 200, "{}", response.text());
                assert_eq!(
                    response.json()["result"]["number"],
                    format!("{height:#x}"),
                    "{}",
                    response.text()
                );
                served += 1;
                height = height % 899 + 1;
            }
            served
        });
        (stop_tx, task)
    };
    r.wait_writes(0, 5.0).await;
    r.redis.kill();
    let state = "meridian_cache_redis_breaker_state";
    eventually("the breaker to open with Redis gone", SETTLE, || async {
        r.metric(0, "meridian_cache_redis_breaker_opened_total")
            .await
            >= 1.0
    })
    .await;
    let written = r.metric(0, "meridian_cache_redis_writes_total").await;
    r.redis.restart().await;
    eventually("the breaker to close with Redis back", SETTLE, || async {
        r.metric(0, state).await == 0.0
            && r.metric(0, "meridian_cache_redis_writes_total").await > written
    })
    .await;
    let (stop, task) = load;
    stop.send(true).unwrap();
    let served = task.await.expect("every request answered right");
    assert!(served > 10, "{served}");
    assert!(
        r.metric(0, "meridian_cache_redis_errors_total").await
            + r.metric(0, "meridian_cache_redis_timeouts_total").await
            >= 1.0
    );
    // Served again from the restarted (empty) Redis for a second proxy's
    // sake: what was written after the restart is there.
    assert!(!r.redis.keys("meridian:*").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_under_a_key_is_a_miss_and_the_next_answer_replaces_it() {
    let r = Region::start(2, patient).await;
    let first = r.call(0, 1, "eth_getBlockByNumber", &block(700)).await;
    assert_eq!(cache_of(&first), Some("MISS"));
    let chain_id = r.call(0, 2, "eth_chainId", "[]").await;
    assert_eq!(cache_of(&chain_id), Some("MISS"));
    r.wait_writes(0, 2.0).await;
    let keys = r.redis.keys("meridian:*").await;
    assert_eq!(keys.len(), 2);
    // Garbage under one key, another type under the other.
    let (block_key, chain_key): (Vec<u8>, Vec<u8>) = {
        let is_block = |k: &Vec<u8>| String::from_utf8_lossy(k).contains("eth_getBlockByNumber");
        let block_key = keys.iter().find(|k| is_block(k)).unwrap().clone();
        let chain_key = keys.iter().find(|k| !is_block(k)).unwrap().clone();
        (block_key, chain_key)
    };
    r.redis.set(&block_key, b"M\x01\x00{\"number\":").await;
    let chain_key_text = String::from_utf8(chain_key.clone()).unwrap();
    r.redis.command(&["DEL", &chain_key_text]).await.unwrap();
    r.redis
        .command(&["LPUSH", &chain_key_text, "not a string"])
        .await
        .unwrap();

    let blocks = r.node.requests("eth_getBlockByNumber");
    let answer = r.call(1, 3, "eth_getBlockByNumber", &block(700)).await;
    assert_eq!(
        (answer.status, cache_of(&answer)),
        (200, Some("MISS")),
        "{}",
        answer.text()
    );
    assert_eq!(answer.json()["result"]["number"], "0x2bc");
    assert_eq!(r.node.requests("eth_getBlockByNumber"), blocks + 1);
    let chain_id = r.call(1, 4, "eth_chainId", "[]").await;
    assert_eq!((chain_id.status, cache_of(&chain_id)), (200, Some("MISS")));
    assert_eq!(chain_id.json()["result"], "0x1");
    assert!(r.metric(1, "meridian_cache_redis_undecodable_total").await >= 2.0);
    assert_eq!(r.metric(1, "meridian_cache_redis_breaker_state").await, 0.0);
    // The upstream's answer was written over the garbage.
    eventually("the garbage to be overwritten", SETTLE, || async {
        r.redis
            .get(&block_key)
            .await
            .is_some_and(|v| v.starts_with(b"M\x01") && v.ends_with(b"}"))
    })
    .await;
}
