//! The benchmark harness's quick mode, run by the test suite so the harness
//! cannot rot: every variant starts, every figure is measured and lands in
//! the result file with a sane value, and nothing is left running.
//!
//! Needs wrk and nginx (Debian packages `wrk` and `nginx`, installed by
//! `.ci/run`); oha is optional (without it the latency figures are skipped
//! and the results say so). No figure is compared with a target here: that
//! is the full run's job, never a test's.

use std::path::PathBuf;

use meridian_integration_tests::bench::report::BenchResults;
use meridian_integration_tests::bench::{self, BenchOptions};

fn positive(what: &str, value: Option<f64>) -> f64 {
    let v = value.unwrap_or_else(|| panic!("{what} is missing"));
    assert!(
        v.is_finite() && v > 0.0,
        "{what} = {v}, expected a positive number"
    );
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_mode_measures_every_figure() {
    let out = tempfile::tempdir().expect("tempdir");
    let mut opts = BenchOptions::quick(PathBuf::from(env!("CARGO_BIN_EXE_meridian-bench")));
    opts.out_dir = out.path().to_path_buf();
    let returned = bench::run(&opts)
        .await
        .unwrap_or_else(|e| panic!("the quick benchmark failed: {e}"));

    // The file on disk is the contract; read it back rather than trusting
    // the returned value.
    let json =
        std::fs::read_to_string(out.path().join("results.json")).expect("results.json written");
    let results: BenchResults = serde_json::from_str(&json).expect("results.json parses");
    assert_eq!(results.mode, "quick");
    assert!(results.machine.cpus >= 1);
    assert!(!results.machine.kernel.is_empty() && results.machine.kernel != "unknown");
    assert!(!results.pinning.is_empty());
    assert_eq!(results.settings.reps, opts.reps);

    let proxy = results.proxy.as_ref().expect("proxy figures");
    assert_eq!(
        proxy.runs.len(),
        3 * opts.reps,
        "one run per variant and repetition"
    );
    // A wrong answer is a bug whatever the load; a socket timeout on a
    // loaded machine is not, so those only have to leave a real measurement
    // (most requests answered). The full run's notes report every error.
    for run in &proxy.runs {
        assert!(
            run.throughput.requests > 0,
            "{}: no request completed",
            run.variant
        );
        assert_eq!(
            run.throughput.non_2xx, 0,
            "{} answered with an error status: {run:?}",
            run.variant
        );
        assert!(
            run.throughput.errors <= run.throughput.requests / 2,
            "{}: more socket errors than answers is no measurement: {run:?}",
            run.variant
        );
    }
    let throughput = proxy.figure("throughput_rps").expect("throughput figure");
    for variant in ["direct", "nginx", "meridian"] {
        positive(
            &format!("{variant} throughput"),
            throughput.values.get(variant).copied(),
        );
        positive(
            &format!("{variant} throughput ÷ direct"),
            throughput.vs_direct.get(variant).copied(),
        );
        positive(
            &format!("{variant} throughput ÷ nginx"),
            throughput.vs_nginx.get(variant).copied(),
        );
    }
    let backend_cpu = proxy
        .figure("backend_cpu_us_per_req")
        .expect("backend CPU figure");
    let cpu = proxy
        .figure("proxy_cpu_us_per_req")
        .expect("proxy CPU figure");
    let idle = proxy.figure("rss_idle_kib").expect("idle RSS figure");
    let held = proxy
        .figure("rss_conns_kib")
        .expect("RSS with connections figure");
    for variant in ["nginx", "meridian"] {
        positive(
            &format!("{variant} backend CPU/request"),
            backend_cpu.values.get(variant).copied(),
        );
        positive(
            &format!("{variant} CPU/request"),
            cpu.values.get(variant).copied(),
        );
        positive(
            &format!("{variant} CPU/request ÷ nginx"),
            cpu.vs_nginx.get(variant).copied(),
        );
        // A proxy process holds at least a megabyte.
        assert!(
            positive(
                &format!("{variant} idle RSS"),
                idle.values.get(variant).copied()
            ) > 1024.0
        );
        assert!(
            positive(
                &format!("{variant} RSS with connections"),
                held.values.get(variant).copied()
            ) > 1024.0
        );
    }
    assert!(!cpu.values.contains_key("direct"), "direct has no proxy");

    match results.tools.iter().find(|t| t.starts_with("oha: found")) {
        Some(_) => {
            for &rate in &opts.rates {
                for variant in ["direct", "nginx", "meridian"] {
                    let get = |p: &str| {
                        proxy
                            .figure(&format!("latency_{p}_ms@{rate}"))
                            .and_then(|f| f.values.get(variant).copied())
                    };
                    let (p50, p99, p999) = (
                        positive("p50", get("p50")),
                        positive("p99", get("p99")),
                        positive("p99.9", get("p99.9")),
                    );
                    assert!(
                        p50 <= p99 && p99 <= p999,
                        "{variant} at {rate}: {p50} {p99} {p999}"
                    );
                }
            }
            for run in &proxy.runs {
                for l in &run.latency {
                    assert!(
                        l.success_rate > 0.5 && l.success_rate <= 1.0,
                        "{}: most fixed-rate requests must be answered: {l:?}",
                        run.variant
                    );
                }
            }
        }
        None => assert!(
            results.notes.iter().any(|n| n.contains("oha")),
            "without oha the results must say the latency figures were skipped: {:?}",
            results.notes
        ),
    }

    let fanout = results.fanout.as_ref().expect("fan-out figures");
    assert_eq!(fanout.streams, opts.fanout_streams);
    assert!(fanout.upstreams >= opts.fanout_upstreams, "{fanout:?}");
    assert_eq!(fanout.rounds.len(), opts.fanout_rounds);
    let (p50, p99, max) = (
        positive("fan-out p50", Some(fanout.p50_ms)),
        positive("fan-out p99", Some(fanout.p99_ms)),
        positive("fan-out max", Some(fanout.max_ms)),
    );
    assert!(p50 <= p99 && p99 <= max, "{fanout:?}");
    assert!(fanout.snapshot_bytes > 0);
    positive("encode time", Some(fanout.encode_ms));
    assert!(
        fanout.table_gzip_bytes > 0 && fanout.table_gzip_bytes < fanout.snapshot_bytes,
        "the compressed table ({} bytes) must be smaller than the snapshot ({} bytes)",
        fanout.table_gzip_bytes,
        fanout.snapshot_bytes
    );
    positive("compress time", Some(fanout.compress_ms));
    assert!(fanout.control_plane_rss_idle_kib > 1024 && fanout.control_plane_rss_kib > 1024);

    // The cache workloads: both variants of both, answered, and Meridian's
    // cache really answering (the hit workload is all hits after the first
    // call; the mixed one is 90 % cacheable).
    let cache = results.cache.as_ref().expect("cache workloads");
    assert_eq!(cache.runs.len(), 4 * opts.reps, "{cache:?}");
    for run in &cache.runs {
        assert!(run.throughput.requests > 0, "{run:?}");
        assert_eq!(run.throughput.non_2xx, 0, "{run:?}");
    }
    for row in &cache.rows {
        positive("baseline throughput", row.baseline_rps);
        positive("Meridian throughput", row.meridian_rps);
        positive("baseline CPU/request", row.baseline_cpu_us_per_req);
        positive("Meridian CPU/request", row.meridian_cpu_us_per_req);
        let ratio = positive("Meridian hit ratio", row.meridian_hit_ratio);
        assert!(ratio > 0.5 && ratio <= 1.0, "{row:?}");
    }

    let md = std::fs::read_to_string(out.path().join("results.md")).expect("results.md written");
    assert!(md.contains("Cache workloads"), "{md}");
    assert!(md.contains("Max throughput"), "{md}");
    assert!(md.contains("Snapshot fan-out"), "{md}");
    assert_eq!(md, returned.markdown());
}
