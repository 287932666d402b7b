//! The cache workloads, each Meridian (cache on) beside the nginx that is
//! its fair baseline, in the same run:
//!
//! - `hit`: every request `eth_chainId`, which Meridian answers from its
//!   cache; beside nginx answering the same body itself (`return 200`), the
//!   floor of one HTTP exchange. The bar: Meridian's hit ≤ 1.2× nginx's
//!   static return in CPU per request.
//! - `mixed`: 70 % head-class (`eth_blockNumber`), 20 % final blocks
//!   (`eth_getBlockByNumber` over 200 heights below the finalized one),
//!   10 % never cached (`web3_clientVersion`); beside nginx proxying all of
//!   it to the same backend.
//!
//! Each workload runs `reps` times per variant in alternating order; the
//! figures are medians: wrk's throughput and the proxy's CPU per request.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::BenchError;
use super::measure::{self, Throughput, median};
use super::variants::{self, Backend, RunningVariant, Variant, VariantContext};
use super::{BenchOptions, backend, wrk_with_cpu};
use meridian_test_kit::poll::try_eventually;
use meridian_test_kit::rpc::RpcClient;

/// One workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    Hit,
    Mixed,
}

impl Workload {
    /// Both, in the order run.
    pub const ALL: [Workload; 2] = [Workload::Hit, Workload::Mixed];

    fn name(self) -> &'static str {
        match self {
            Workload::Hit => "hit",
            Workload::Mixed => "mixed",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Workload::Hit => "Cache hit (`eth_chainId`) vs nginx `return 200`",
            Workload::Mixed => {
                "Mixed 70 % head / 20 % final block / 10 % uncached vs nginx proxying"
            }
        }
    }

    /// The baseline and Meridian.
    fn variants(self) -> [Variant; 2] {
        match self {
            Workload::Hit => [Variant::NginxStatic, Variant::MeridianCached],
            Workload::Mixed => [Variant::Nginx, Variant::MeridianCached],
        }
    }

    /// The wrk script.
    fn script(self) -> String {
        match self {
            Workload::Hit => measure::post_script(measure::CHAIN_ID_BODY),
            Workload::Mixed => measure::rotate_script(&mixed_bodies()),
        }
    }
}

/// Ten requests per cycle (7 head, 2 block, 1 uncached), 100 cycles: the
/// block requests walk 200 heights below the backend's finalized one.
pub fn mixed_bodies() -> Vec<String> {
    let finalized = backend::head_height() - backend::FINALITY_DEPTH;
    let mut bodies = Vec::with_capacity(1_000);
    let mut block = 0u64;
    for i in 0..1_000u64 {
        let body = match i % 10 {
            7 | 8 => {
                block += 1;
                let height = finalized - 200 + block % 200;
                format!(
                    r#"{{"jsonrpc":"2.0","id":{i},"method":"eth_getBlockByNumber","params":["{height:#x}",false]}}"#
                )
            }
            9 => {
                format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"web3_clientVersion","params":[]}}"#)
            }
            _ => format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"eth_blockNumber","params":[]}}"#),
        };
        bodies.push(body);
    }
    bodies
}

/// One variant of one workload in one repetition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheRun {
    pub workload: Workload,
    pub variant: Variant,
    pub rep: usize,
    pub throughput: Throughput,
    /// Proxy CPU per request (user+sys), µs.
    pub proxy_cpu_us_per_req: Option<f64>,
    /// Meridian's cache hits ÷ its cacheable calls over the whole life of
    /// the proxy (warm-up included), from its `/metrics`: proof that the
    /// workload measured the cache. `None` for nginx.
    #[serde(default)]
    pub hit_ratio: Option<f64>,
}

/// The medians of one workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheRow {
    pub workload: Workload,
    pub label: String,
    /// The nginx variant Meridian is compared with.
    pub baseline: Variant,
    pub baseline_rps: Option<f64>,
    pub meridian_rps: Option<f64>,
    pub baseline_cpu_us_per_req: Option<f64>,
    pub meridian_cpu_us_per_req: Option<f64>,
    pub meridian_hit_ratio: Option<f64>,
}

impl CacheRow {
    /// Meridian's CPU per request ÷ the baseline's.
    pub fn cpu_ratio(&self) -> Option<f64> {
        match (self.meridian_cpu_us_per_req, self.baseline_cpu_us_per_req) {
            (Some(m), Some(b)) if b > 0.0 => Some(m / b),
            _ => None,
        }
    }

    /// Meridian's throughput ÷ the baseline's.
    pub fn rps_ratio(&self) -> Option<f64> {
        match (self.meridian_rps, self.baseline_rps) {
            (Some(m), Some(b)) if b > 0.0 => Some(m / b),
            _ => None,
        }
    }
}

/// The cache part of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheResults {
    pub runs: Vec<CacheRun>,
    pub rows: Vec<CacheRow>,
}

impl CacheResults {
    fn summarise(runs: Vec<CacheRun>) -> CacheResults {
        let rows = Workload::ALL
            .into_iter()
            .map(|workload| {
                let [baseline, meridian] = workload.variants();
                let pick = |variant: Variant, get: &dyn Fn(&CacheRun) -> Option<f64>| {
                    let samples: Vec<f64> = runs
                        .iter()
                        .filter(|r| r.workload == workload && r.variant == variant)
                        .filter_map(get)
                        .collect();
                    median(&samples)
                };
                let rps = |r: &CacheRun| Some(r.throughput.requests_per_sec);
                let cpu = |r: &CacheRun| r.proxy_cpu_us_per_req;
                CacheRow {
                    workload,
                    label: workload.label().to_owned(),
                    baseline,
                    baseline_rps: pick(baseline, &rps),
                    meridian_rps: pick(meridian, &rps),
                    baseline_cpu_us_per_req: pick(baseline, &cpu),
                    meridian_cpu_us_per_req: pick(meridian, &cpu),
                    meridian_hit_ratio: pick(meridian, &|r: &CacheRun| r.hit_ratio),
                }
            })
            .collect();
        CacheResults { runs, rows }
    }

    /// The markdown table.
    pub fn markdown(&self, md: &mut String) {
        let _ = writeln!(md, "\n#### Cache workloads (medians)\n");
        let _ = writeln!(
            md,
            "| Workload | baseline | baseline req/s | Meridian req/s | Meridian ÷ baseline (req/s) | baseline CPU µs/req | Meridian CPU µs/req | Meridian ÷ baseline (CPU) | Meridian hit ratio |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
        let num = |v: Option<f64>| v.map_or("–".into(), super::report::num);
        let ratio = |v: Option<f64>| v.map_or("–".into(), |x| format!("{x:.2}×"));
        for row in &self.rows {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                row.label,
                row.baseline,
                num(row.baseline_rps),
                num(row.meridian_rps),
                ratio(row.rps_ratio()),
                num(row.baseline_cpu_us_per_req),
                num(row.meridian_cpu_us_per_req),
                ratio(row.cpu_ratio()),
                row.meridian_hit_ratio
                    .map_or("–".into(), |r| format!("{:.1} %", r * 100.0)),
            );
        }
    }
}

/// Runs every workload.
pub async fn run(
    opts: &BenchOptions,
    ctx: &VariantContext,
    wrk: &std::path::Path,
    load_cpus: Option<&str>,
    backend: &Backend,
) -> Result<CacheResults, BenchError> {
    let mut runs = Vec::new();
    for workload in Workload::ALL {
        let script = workload.script();
        for rep in 0..opts.reps {
            let mut order = workload.variants();
            if rep % 2 == 1 {
                order.reverse();
            }
            for variant in order {
                eprintln!(
                    "meridian-bench: cache {} rep {}/{}: {variant}",
                    workload.name(),
                    rep + 1,
                    opts.reps
                );
                let label = format!("cache-{}-{variant}-{rep}", workload.name());
                let mut running = variants::start(variant, ctx, &label).await?;
                if variant == Variant::MeridianCached {
                    wait_finalized(&running).await?;
                }
                let dir = ctx.work_dir.join(format!("{label}-wrk"));
                std::fs::create_dir_all(&dir)
                    .map_err(BenchError::io(format!("create {}", dir.display())))?;
                let wrk_run = measure::WrkRun {
                    wrk,
                    cpus: load_cpus,
                    connections: opts.wrk_connections,
                    duration: opts.duration,
                    work_dir: &dir,
                    script: &script,
                };
                // Warm-up fills Meridian's cache (and nginx's connections):
                // the figures are of the steady state.
                let warmup = opts.warmup.max(Duration::from_secs(1));
                measure::wrk(
                    &measure::WrkRun {
                        duration: warmup,
                        ..wrk_run.clone()
                    },
                    &running.url,
                )?;
                let (throughput, proxy_cpu_us_per_req, _) =
                    wrk_with_cpu(&mut running, backend, &wrk_run)?;
                let hit_ratio = hit_ratio(&running).await;
                runs.push(CacheRun {
                    workload,
                    variant,
                    rep,
                    throughput,
                    proxy_cpu_us_per_req,
                    hit_ratio,
                });
                drop(running);
            }
        }
    }
    Ok(CacheResults::summarise(runs))
}

/// The sum of every sample of `family` in a Prometheus text page.
fn family_sum(page: &str, family: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(family) && l[family.len()..].starts_with('{'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Meridian's hits ÷ (hits + misses + coalesced), all networks and classes.
async fn hit_ratio(running: &RunningVariant) -> Option<f64> {
    let admin = running.admin.as_ref()?;
    let page = RpcClient::new()
        .get(format!("{admin}/metrics"))
        .await
        .ok()?
        .text();
    let hits = family_sum(&page, "meridian_cache_hits_total");
    let calls = hits
        + family_sum(&page, "meridian_cache_misses_total")
        + family_sum(&page, "meridian_cache_coalesced_total");
    (calls > 0.0).then(|| hits / calls)
}

/// Waits until Meridian knows the backend's finalized height, so final
/// blocks are cached as such (not only for the head TTL).
async fn wait_finalized(running: &RunningVariant) -> Result<(), BenchError> {
    let Some(admin) = &running.admin else {
        return Ok(());
    };
    let client = RpcClient::new();
    let url = format!("{admin}/metrics");
    let series = format!(
        "meridian_network_finalized_height{{network=\"{}\"}} ",
        variants::NETWORK
    );
    try_eventually(Duration::from_secs(30), || {
        let (client, url, series) = (client.clone(), url.clone(), series.clone());
        async move {
            let Ok(r) = client.get(&url).await else {
                return false;
            };
            r.text()
                .lines()
                .find_map(|l| l.strip_prefix(&series))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .is_some_and(|h| h > 0.0)
        }
    })
    .await
    .map(|_| ())
    .map_err(|()| {
        BenchError::measure(
            "meridian-cached",
            format!("no finalized height on {url} within 30 s"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_a_family_over_its_labels_only() {
        let page = "# TYPE meridian_cache_hits_total counter\n\
                    meridian_cache_hits_total{network=\"a\",class=\"head\"} 3\n\
                    meridian_cache_hits_total{network=\"a\",class=\"block\"} 4\n\
                    meridian_cache_hits_total_other{x=\"y\"} 100\n";
        assert_eq!(family_sum(page, "meridian_cache_hits_total"), 7.0);
    }

    #[test]
    fn the_mix_is_seventy_twenty_ten_with_final_blocks_only() {
        let bodies = mixed_bodies();
        let count = |m: &str| bodies.iter().filter(|b| b.contains(m)).count();
        assert_eq!(count("eth_blockNumber"), 700);
        assert_eq!(count("eth_getBlockByNumber"), 200);
        assert_eq!(count("web3_clientVersion"), 100);
        let finalized = backend::head_height() - backend::FINALITY_DEPTH;
        for body in bodies.iter().filter(|b| b.contains("eth_getBlockByNumber")) {
            let v: serde_json::Value = serde_json::from_str(body).expect("JSON");
            let height = v["params"][0].as_str().expect("a number");
            let height = u64::from_str_radix(&height[2..], 16).expect("hex");
            assert!(height <= finalized, "{height}");
        }
    }
}
