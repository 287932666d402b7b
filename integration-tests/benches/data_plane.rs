//! Criterion micro-benchmarks of the data plane's hot parts:
//!
//! - `parse`: the request parser and classifier (`parse` + `route` of every
//!   call: what every request pays before upstream selection), for a bare `eth_blockNumber`, an `eth_getBalance` with
//!   params, and a batch of ten.
//! - `select`: picking an upstream from networks of 3, 30 and 300 healthy
//!   upstreams (two regions).
//! - `snapshot`: validating and building a routing table from a snapshot
//!   (content hash, decode, build) of 10, 1,000 and 10,000 upstreams, and the
//!   whole apply (build, swap, persist to a temp dir).
//! - `cache_rules`: the chain module's cache class and canonical params
//!   (the cache key's variable part) of a few typical calls.
//! - `cache`: the whole key and a lookup that hits, from a parsed call
//!   (what a cache hit costs before its answer is written).
//!
//! Run: `cargo bench -p meridian-integration-tests --bench data_plane`.

// Setup code of a benchmark is startup code: a failure there is a bug in
// the benchmark, and panicking with the reason is the right report.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use meridian_common::chain::ChainKind;
use meridian_common::proto;
use meridian_common::snapshot::{
    Network, NetworkPolicy, Role, RoutingTable as Model, Upstream, UpstreamState, content_hash,
    encode_table,
};
use meridian_data_plane::cache::ResponseCache;
use meridian_data_plane::config::ProxyConfig;
use meridian_data_plane::control::persist::SnapshotFile;
use meridian_data_plane::control::{Applier, apply};
use meridian_data_plane::proxy::classify::route;
use meridian_data_plane::proxy::parse::parse;
use meridian_data_plane::routing::{RoutingTable, SnapshotMeta, Tried, select};
use meridian_data_plane::state::Shared;
use rand::SeedableRng;
use rand::rngs::SmallRng;

const REGION: &str = "eu";

/// One network of `n` healthy upstreams, alternating between two regions.
fn model(n: usize) -> Model {
    let upstreams = (0..n)
        .map(|i| Upstream {
            id: format!("u{i}"),
            url: format!("http://127.0.0.1:{}/", 20_000 + i % 40_000),
            region: if i % 2 == 0 { "eu" } else { "us" }.into(),
            weight: 1,
            roles: Role::DEFAULT.to_vec(),
            state: UpstreamState::Healthy,
            head_height: 20_000_000,
            lag: 0,
            latency_ewma_us: 800 + (i as u64 % 200),
            score: 50 + (i as u32 % 50),
            reason: String::new(),
        })
        .collect();
    Model {
        networks: vec![Network {
            hosts: Vec::new(),
            id: "bench".into(),
            chain: ChainKind::Evm,
            leader_url: Some("http://127.0.0.1:8549/".into()),
            upstreams,
            policy: NetworkPolicy::default(),
            cache: Default::default(),
        }],
        generated_at_unix_ms: 1,
    }
}

/// The snapshot message a control plane would stream for `model(n)`.
fn snapshot(n: usize, seq: u64) -> proto::Snapshot {
    let table = encode_table(&model(n));
    proto::Snapshot {
        version: Some(proto::Version { epoch: 1, seq }),
        nonce: format!("n{seq}"),
        content_hash: content_hash(&table),
        table: Some(table),
        table_gzip: Default::default(),
    }
}

fn table(n: usize) -> RoutingTable {
    RoutingTable::build(
        SnapshotMeta::default(),
        model(n),
        REGION,
        &RoutingTable::empty(),
    )
    .expect("the benchmark table builds")
}

fn bench_parse(c: &mut Criterion) {
    let bodies: [(&str, &[u8]); 3] = [
        (
            "eth_blockNumber",
            br#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#,
        ),
        (
            "eth_getBalance",
            br#"{"jsonrpc":"2.0","id":"req-42","method":"eth_getBalance","params":["0x407d73d8a49eeb85d32cf465507dd71d507100c1","latest"]}"#,
        ),
        ("batch_10", BATCH_10.as_bytes()),
    ];
    let table = table(3);
    let network = table.network("bench").expect("network bench").clone();
    let mut group = c.benchmark_group("parse");
    for (name, body) in bodies {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("parse+route", name), body, |b, body| {
            b.iter(|| {
                let parsed = parse(black_box(body), 100).expect("valid request");
                for call in parsed.calls() {
                    black_box(route(&network, false, call));
                }
            });
        });
    }
    group.finish();
}

fn bench_cache_rules(c: &mut Criterion) {
    let chain = ChainKind::Evm.chain();
    let calls: [(&str, &str, Option<&str>); 3] = [
        ("eth_blockNumber", "eth_blockNumber", None),
        (
            "eth_getBalance",
            "eth_getBalance",
            Some(r#"["0x407D73d8a49eeb85d32cf465507dd71d507100c1","0x01312D00"]"#),
        ),
        (
            "eth_call",
            "eth_call",
            Some(
                r#"[{"to":"0x6B175474E89094C44Da98b954EedeAC495271d0F","data":"0x70a08231000000000000000000000000407d73d8a49eeb85d32cf465507dd71d507100c1"},"latest"]"#,
            ),
        ),
    ];
    let mut group = c.benchmark_group("cache_rules");
    for (name, method, params) in calls {
        let params = params
            .map(|p| serde_json::value::RawValue::from_string(p.to_owned()).expect("valid params"));
        group.bench_function(BenchmarkId::new("class+canonical_params", name), |b| {
            b.iter(|| {
                let params = params.as_deref();
                black_box(chain.cache_class(black_box(method), params));
                black_box(chain.canonical_params(method, params))
            });
        });
    }
    group.finish();
}

const BATCH_10: &str = r#"[{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]},{"jsonrpc":"2.0","id":2,"method":"eth_chainId","params":[]},{"jsonrpc":"2.0","id":3,"method":"eth_getBalance","params":["0x00","latest"]},{"jsonrpc":"2.0","id":4,"method":"eth_blockNumber","params":[]},{"jsonrpc":"2.0","id":5,"method":"eth_gasPrice","params":[]},{"jsonrpc":"2.0","id":6,"method":"eth_blockNumber","params":[]},{"jsonrpc":"2.0","id":7,"method":"net_version","params":[]},{"jsonrpc":"2.0","id":8,"method":"eth_getCode","params":["0x00","latest"]},{"jsonrpc":"2.0","id":9,"method":"eth_blockNumber","params":[]},{"jsonrpc":"2.0","id":10,"method":"eth_call","params":[{"to":"0x00","data":"0x"},"latest"]}]"#;

fn bench_select(c: &mut Criterion) {
    let mut group = c.benchmark_group("select");
    for n in [3usize, 30, 300] {
        let table = table(n);
        let network = table.network("bench").expect("network bench").clone();
        let mut rng = SmallRng::seed_from_u64(7);
        group.bench_function(BenchmarkId::new("first_try", n), |b| {
            let tried = Tried::default();
            b.iter(|| black_box(select(&network, Role::Read, &tried, &mut rng).map(|c| c.index)));
        });
        group.bench_function(BenchmarkId::new("retry_after_one", n), |b| {
            let mut tried = Tried::default();
            tried.insert(0);
            b.iter(|| black_box(select(&network, Role::Read, &tried, &mut rng).map(|c| c.index)));
        });
    }
    group.finish();
}

fn bench_snapshot(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot");
    group.sample_size(20);
    for n in [10usize, 1_000, 10_000] {
        let snap = snapshot(n, 2);
        let previous = table(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("validate+build", n), |b| {
            b.iter(|| {
                black_box(apply::validate(black_box(&snap), REGION, &previous).expect("valid"))
            });
        });

        let dir = tempfile::tempdir().expect("tempdir");
        let config = ProxyConfig::new("http://127.0.0.1:1", REGION, dir.path());
        let shared: Arc<Shared> = Shared::new(&config).expect("no shared tier: nothing can fail");
        let file = SnapshotFile::new(dir.path());
        file.ensure_dir().expect("state dir");
        let applier = Applier::new(shared, file);
        group.bench_function(BenchmarkId::new("apply+persist", n), |b| {
            b.iter(|| black_box(applier.apply(black_box(&snap)).expect("applies")));
        });
    }
    group.finish();
}

/// The key of a parsed call and its lookup, in a cache holding its
/// answer (static and head entries: they need no finalized height).
fn bench_cache_lookup(c: &mut Criterion) {
    let bodies: [(&str, &[u8]); 3] = [
        (
            "eth_chainId",
            br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#,
        ),
        (
            "eth_getBalance",
            br#"{"jsonrpc":"2.0","id":2,"method":"eth_getBalance","params":["0x407D73d8a49eeb85d32cf465507dd71d507100c1","latest"]}"#,
        ),
        (
            "eth_call",
            br#"{"jsonrpc":"2.0","id":3,"method":"eth_call","params":[{"to":"0x6B175474E89094C44Da98b954EedeAC495271d0F","data":"0x70a08231000000000000000000000000407d73d8a49eeb85d32cf465507dd71d507100c1"},"latest"]}"#,
        ),
    ];
    // A head TTL longer than the run: the entries stay fresh throughout.
    let mut long = model(3);
    long.networks[0].cache.head_ttl_ms = u32::MAX;
    let table = RoutingTable::build(
        SnapshotMeta::default(),
        long,
        REGION,
        &RoutingTable::empty(),
    )
    .expect("the benchmark table builds");
    let network = table.network("bench").expect("network bench").clone();
    let cache = ResponseCache::new(64 * 1024 * 1024).expect("a cache");
    let mut group = c.benchmark_group("cache");
    for (name, body) in bodies {
        let parsed = parse(body, 100).expect("valid request");
        let call = parsed.calls().next().expect("one call");
        let answer = bytes::Bytes::from_static(br#""0x1""#);
        let key = ResponseCache::cacheable(&network, call).expect("cacheable");
        cache.put(&network, key, &answer, std::time::Instant::now());
        let key = ResponseCache::cacheable(&network, call).expect("cacheable");
        assert!(
            cache
                .get(&network, &key, std::time::Instant::now())
                .is_some(),
            "{name}: the measured lookup must hit"
        );
        group.bench_function(BenchmarkId::new("key+hit", name), |b| {
            b.iter(|| {
                let key = ResponseCache::cacheable(&network, black_box(call)).expect("cacheable");
                black_box(cache.get(&network, &key, std::time::Instant::now()))
            });
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_parse,
    bench_select,
    bench_snapshot,
    bench_cache_rules,
    bench_cache_lookup
);
criterion_main!(benches);
