//! The result file and the markdown table.
//!
//! `results.json` keeps every repetition and the summary; `results.md` is the
//! table printed on stdout and pasted into `docs/BENCHMARKS.md`. Each proxy
//! figure is the median over repetitions, with its ratio to nginx and to
//! direct (and, for latency, the time added over direct).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cache::CacheResults;
use super::error::BenchError;
use super::fanout::FanoutResult;
use super::measure::{Latency, Throughput, median};
use super::variants::Variant;

/// Everything one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchResults {
    /// `quick` or `full`.
    pub mode: String,
    /// When it ran (Unix ms).
    pub started_unix_ms: u64,
    /// The machine.
    pub machine: Machine,
    /// Which CPUs ran what.
    pub pinning: String,
    /// `/proc/loadavg` when the run started and when it ended: other work on
    /// the machine skews every figure, and this shows whether there was any.
    pub load_average: [String; 2],
    /// The settings used.
    pub settings: Settings,
    /// Tools found or installed.
    pub tools: Vec<String>,
    /// Anything skipped or odd, one line each.
    pub notes: Vec<String>,
    /// Proxy overhead figures, if measured.
    pub proxy: Option<ProxyResults>,
    /// Fan-out figures, if measured.
    pub fanout: Option<FanoutResult>,
    /// Cache workloads, if measured (absent in files of older runs).
    #[serde(default)]
    pub cache: Option<CacheResults>,
}

/// The settings of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Repetitions of every variant.
    pub reps: usize,
    /// Seconds of each wrk run and of each fixed-rate run.
    pub duration_s: f64,
    /// wrk connections.
    pub wrk_connections: usize,
    /// Keep-alive client connections held for the memory figure.
    pub held_connections: usize,
    /// Fixed rates for latency (req/s).
    pub rates: Vec<u32>,
    /// Data-plane worker threads.
    pub worker_threads: usize,
    /// Cargo profile of Meridian's binaries.
    pub profile: String,
}

/// The machine the run happened on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// Online CPUs.
    pub cpus: usize,
    /// CPU model (`/proc/cpuinfo`).
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
    /// Operating system (`/etc/os-release`).
    pub os: String,
    /// Memory in MiB.
    pub memory_mib: u64,
}

impl Machine {
    /// Describes this machine from `/proc` and `/etc/os-release`.
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpus = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or(0, |kib| kib / 1024);
        Machine {
            cpus: cpus.max(1),
            cpu_model,
            kernel,
            os,
            memory_mib,
        }
    }
}

/// One variant in one repetition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantRun {
    /// Which variant.
    pub variant: Variant,
    /// Repetition (0-based).
    pub rep: usize,
    /// Position in that repetition's order (0-based).
    pub position: usize,
    /// wrk's result.
    pub throughput: Throughput,
    /// Proxy CPU per request (user+sys), µs; `None` for direct.
    pub proxy_cpu_us_per_req: Option<f64>,
    /// Backend CPU per request, µs (the same work in every variant).
    pub backend_cpu_us_per_req: f64,
    /// Fixed-rate latencies (empty without oha).
    pub latency: Vec<Latency>,
    /// Proxy RSS after start, KiB; `None` for direct.
    pub rss_idle_kib: Option<u64>,
    /// Proxy RSS with the held connections open, KiB; `None` for direct.
    pub rss_conns_kib: Option<u64>,
}

/// One figure across variants.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figure {
    /// Stable key, e.g. `throughput_rps`, `latency_p99_ms@20000`.
    pub key: String,
    /// Human label.
    pub label: String,
    /// Whether higher is better.
    pub higher_is_better: bool,
    /// Median per variant (variants without the figure are absent).
    pub values: BTreeMap<String, f64>,
    /// Each variant's value divided by nginx's.
    pub vs_nginx: BTreeMap<String, f64>,
    /// Each variant's value divided by direct's.
    pub vs_direct: BTreeMap<String, f64>,
    /// Each variant's value minus direct's (latency figures only).
    pub minus_direct: BTreeMap<String, f64>,
}

/// The proxy overhead part of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProxyResults {
    /// Every variant in every repetition, in the order run.
    pub runs: Vec<VariantRun>,
    /// The medians and ratios.
    pub figures: Vec<Figure>,
}

impl ProxyResults {
    /// Summarises `runs` into figures.
    pub fn summarise(
        runs: Vec<VariantRun>,
        rates: &[u32],
        held_connections: usize,
    ) -> ProxyResults {
        let mut figures = Vec::new();
        let mut add = |key: String,
                       label: String,
                       higher: bool,
                       latency: bool,
                       get: &dyn Fn(&VariantRun) -> Option<f64>| {
            let mut values = BTreeMap::new();
            for variant in Variant::ALL {
                let samples: Vec<f64> = runs
                    .iter()
                    .filter(|r| r.variant == variant)
                    .filter_map(get)
                    .collect();
                if let Some(m) = median(&samples) {
                    values.insert(variant.name().to_owned(), m);
                }
            }
            // A figure no variant has (latency without oha) is left out
            // rather than shown as a row of dashes.
            if !values.is_empty() {
                figures.push(Figure::new(key, label, higher, latency, values));
            }
        };
        add(
            "throughput_rps".into(),
            "Max throughput (req/s, wrk)".into(),
            true,
            false,
            &|r| Some(r.throughput.requests_per_sec),
        );
        add(
            "proxy_cpu_us_per_req".into(),
            "Proxy CPU per request (µs, user+sys)".into(),
            false,
            false,
            &|r| r.proxy_cpu_us_per_req,
        );
        add(
            "backend_cpu_us_per_req".into(),
            "Backend CPU per request (µs)".into(),
            false,
            false,
            &|r| Some(r.backend_cpu_us_per_req),
        );
        for &rate in rates {
            for (name, pick) in [
                ("p50", (|l: &Latency| l.p50_ms) as fn(&Latency) -> f64),
                ("p99", |l: &Latency| l.p99_ms),
                ("p99.9", |l: &Latency| l.p999_ms),
            ] {
                add(
                    format!("latency_{name}_ms@{rate}"),
                    format!("Latency {name} at {rate} req/s (ms)"),
                    false,
                    true,
                    &|r| r.latency.iter().find(|l| l.rate == rate).map(pick),
                );
            }
        }
        add(
            "rss_idle_kib".into(),
            "Proxy RSS idle (KiB)".into(),
            false,
            false,
            &|r| r.rss_idle_kib.map(|v| v as f64),
        );
        add(
            "rss_conns_kib".into(),
            format!("Proxy RSS with {held_connections} keep-alive connections (KiB)"),
            false,
            false,
            &|r| r.rss_conns_kib.map(|v| v as f64),
        );
        ProxyResults { runs, figures }
    }

    /// A figure by key.
    pub fn figure(&self, key: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.key == key)
    }
}

impl Figure {
    fn new(
        key: String,
        label: String,
        higher_is_better: bool,
        latency: bool,
        values: BTreeMap<String, f64>,
    ) -> Figure {
        let ratio_to = |base: &str| -> BTreeMap<String, f64> {
            match values.get(base) {
                Some(&b) if b > 0.0 => values.iter().map(|(k, v)| (k.clone(), v / b)).collect(),
                _ => BTreeMap::new(),
            }
        };
        let vs_nginx = ratio_to("nginx");
        let vs_direct = ratio_to("direct");
        let minus_direct = match (latency, values.get("direct")) {
            (true, Some(&d)) => values.iter().map(|(k, v)| (k.clone(), v - d)).collect(),
            _ => BTreeMap::new(),
        };
        Figure {
            key,
            label,
            higher_is_better,
            values,
            vs_nginx,
            vs_direct,
            minus_direct,
        }
    }
}

impl BenchResults {
    /// The markdown report: machine, pinning, proxy table, fan-out table,
    /// notes.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(md, "### Meridian benchmark ({} mode)\n", self.mode);
        let _ = writeln!(
            md,
            "- Machine: {} CPUs, {}, {} MiB RAM, kernel {}, {}",
            m.cpus, m.cpu_model, m.memory_mib, m.kernel, m.os
        );
        let _ = writeln!(md, "- Pinning: {}", self.pinning);
        let _ = writeln!(
            md,
            "- Load average (1/5/15 min) at start: {}; at end: {}",
            self.load_average[0], self.load_average[1]
        );
        let s = &self.settings;
        if self.proxy.is_some() {
            let _ = writeln!(
                md,
                "- Settings: {} repetition(s) per variant in alternating order, {} s per measurement, wrk -t1 -c{}, \
             {} held keep-alive connections, data plane with {} worker thread(s), Meridian built `{}`, \
             access logs off on both proxies (nginx `access_log off`, Meridian `MERIDIAN_LOG={}`)",
                s.reps,
                s.duration_s,
                s.wrk_connections,
                s.held_connections,
                s.worker_threads,
                s.profile,
                super::variants::MERIDIAN_LOG_FILTER,
            );
        }
        if let Some(proxy) = &self.proxy {
            let _ = writeln!(md, "\n#### Proxy overhead (medians)\n");
            let _ = writeln!(
                md,
                "| Figure | direct | nginx | Meridian | Meridian ÷ nginx | Meridian ÷ direct | nginx ÷ direct | Meridian − direct | nginx − direct |"
            );
            let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
            for f in &proxy.figures {
                let v = |k: &str| f.values.get(k).map_or("–".into(), |x| num(*x));
                let r = |map: &BTreeMap<String, f64>, k: &str| {
                    map.get(k).map_or("–".into(), |x| format!("{x:.2}×"))
                };
                let d = |k: &str| {
                    f.minus_direct
                        .get(k)
                        .map_or("–".into(), |x| format!("{x:+.3}"))
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    f.label,
                    v("direct"),
                    v("nginx"),
                    v("meridian"),
                    r(&f.vs_nginx, "meridian"),
                    r(&f.vs_direct, "meridian"),
                    r(&f.vs_direct, "nginx"),
                    d("meridian"),
                    d("nginx"),
                );
            }
        }
        if let Some(cache) = &self.cache {
            cache.markdown(&mut md);
        }
        if let Some(f) = &self.fanout {
            let _ = writeln!(md, "\n#### Snapshot fan-out\n");
            let _ = writeln!(
                md,
                "{} simulated data planes, {} upstreams in {} networks, {} changes (admin add/remove of one upstream).\n",
                f.streams,
                f.upstreams,
                f.networks,
                f.rounds.len()
            );
            let _ = writeln!(md, "| Figure | Value |");
            let _ = writeln!(md, "|---|---:|");
            let _ = writeln!(
                md,
                "| Change → ACK, p50 over streams (ms, median of rounds) | {} |",
                num(f.p50_ms)
            );
            let _ = writeln!(
                md,
                "| Change → ACK, p99 over streams (ms, median of rounds) | {} |",
                num(f.p99_ms)
            );
            let _ = writeln!(
                md,
                "| Change → ACK, max (ms, worst round) | {} |",
                num(f.max_ms)
            );
            let _ = writeln!(
                md,
                "| Snapshot encoded size (bytes) | {} |",
                f.snapshot_bytes
            );
            let _ = writeln!(
                md,
                "| Snapshot encode time (ms, prost, once) | {} |",
                num(f.encode_ms)
            );
            let _ = writeln!(
                md,
                "| Table compressed once per version, `table_gzip` (bytes) | {} |",
                f.table_gzip_bytes
            );
            let _ = writeln!(
                md,
                "| Table compress time (ms, gzip level 6, once) | {} |",
                num(f.compress_ms)
            );
            let _ = writeln!(
                md,
                "| Control-plane RSS before streams (KiB) | {} |",
                f.control_plane_rss_idle_kib
            );
            let _ = writeln!(
                md,
                "| Control-plane RSS with {} streams (KiB) | {} |",
                f.streams, f.control_plane_rss_kib
            );
            let rounds: Vec<String> = f
                .rounds
                .iter()
                .map(|r| {
                    format!(
                        "{} v{}: p50 {} / p99 {} / max {}",
                        r.change,
                        r.version,
                        num(r.p50_ms),
                        num(r.p99_ms),
                        num(r.max_ms)
                    )
                })
                .collect();
            let _ = writeln!(md, "\nRounds (ms): {}", rounds.join("; "));
        }
        if !self.tools.is_empty() || !self.notes.is_empty() {
            let _ = writeln!(md, "\nTools: {}", self.tools.join("; "));
            for note in &self.notes {
                let _ = writeln!(md, "\n- Note: {note}");
            }
        }
        md
    }

    /// Writes `results.json` and `results.md` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf), BenchError> {
        std::fs::create_dir_all(dir)
            .map_err(BenchError::io(format!("create {}", dir.display())))?;
        let json_path = dir.join("results.json");
        let md_path = dir.join("results.md");
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| BenchError::measure("results.json", e.to_string()))?;
        std::fs::write(&json_path, json)
            .map_err(BenchError::io(format!("write {}", json_path.display())))?;
        std::fs::write(&md_path, self.markdown())
            .map_err(BenchError::io(format!("write {}", md_path.display())))?;
        Ok((json_path, md_path))
    }
}

/// The first three fields of `/proc/loadavg` (1, 5 and 15 minutes).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// A number with as many decimals as its size deserves.
pub(super) fn num(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(variant: Variant, rep: usize, rps: f64, cpu: Option<f64>) -> VariantRun {
        VariantRun {
            variant,
            rep,
            position: 0,
            throughput: Throughput {
                requests: 1000,
                requests_per_sec: rps,
                errors: 0,
                non_2xx: 0,
            },
            proxy_cpu_us_per_req: cpu,
            backend_cpu_us_per_req: 5.0,
            latency: vec![Latency {
                rate: 5000,
                p50_ms: rps / 100_000.0,
                p99_ms: 1.0,
                p999_ms: 2.0,
                achieved_rps: 5000.0,
                success_rate: 1.0,
            }],
            rss_idle_kib: cpu.map(|_| 1000),
            rss_conns_kib: cpu.map(|_| 5000),
        }
    }

    #[test]
    fn figures_are_medians_with_ratios() {
        let runs = vec![
            run(Variant::Direct, 0, 100_000.0, None),
            run(Variant::Direct, 1, 120_000.0, None),
            run(Variant::Direct, 2, 110_000.0, None),
            run(Variant::Nginx, 0, 50_000.0, Some(10.0)),
            run(Variant::Nginx, 1, 60_000.0, Some(12.0)),
            run(Variant::Nginx, 2, 55_000.0, Some(11.0)),
            run(Variant::Meridian, 0, 66_000.0, Some(8.0)),
            run(Variant::Meridian, 1, 44_000.0, Some(9.0)),
            run(Variant::Meridian, 2, 55_000.0, Some(10.0)),
        ];
        let p = ProxyResults::summarise(runs, &[5000], 10_000);
        let t = p.figure("throughput_rps").expect("throughput");
        assert_eq!(t.values["direct"], 110_000.0);
        assert_eq!(t.values["meridian"], 55_000.0);
        assert!((t.vs_direct["meridian"] - 0.5).abs() < 1e-9);
        assert!((t.vs_nginx["meridian"] - 1.0).abs() < 1e-9);
        let cpu = p.figure("proxy_cpu_us_per_req").expect("cpu");
        assert!(!cpu.values.contains_key("direct"));
        assert!((cpu.vs_nginx["meridian"] - 9.0 / 11.0).abs() < 1e-9);
        let lat = p.figure("latency_p50_ms@5000").expect("latency");
        assert!((lat.minus_direct["meridian"] - (0.55 - 1.1)).abs() < 1e-9);
        let results = BenchResults {
            mode: "quick".into(),
            started_unix_ms: 0,
            machine: Machine::describe(),
            pinning: "load on CPU 0".into(),
            load_average: [load_average(), load_average()],
            settings: Settings {
                reps: 3,
                duration_s: 1.0,
                wrk_connections: 64,
                held_connections: 10_000,
                rates: vec![5000],
                worker_threads: 1,
                profile: "release".into(),
            },
            tools: vec![],
            notes: vec!["a note".into()],
            proxy: Some(p),
            fanout: None,
            cache: None,
        };
        let md = results.markdown();
        assert!(
            md.contains(
                "| Max throughput (req/s, wrk) | 110000 | 55000 | 55000 | 1.00× | 0.50× | 0.50× |"
            ),
            "{md}"
        );
        assert!(md.contains("a note"));
    }
}
