//! The benchmark harness (`meridian-bench`): Meridian's proxy overhead side by
//! side with nginx and with going direct, and snapshot fan-out.
//!
//! - [`backend`]: the fast mock EVM node every variant talks to.
//! - [`tools`]: finding or installing wrk, nginx and oha.
//! - [`binaries`]: building Meridian's binaries.
//! - [`process`]: pinned child processes that are always stopped.
//! - [`procfs`]: CPU time and memory from `/proc`.
//! - [`variants`]: starting direct / nginx / Meridian.
//! - [`measure`]: throughput, latency, CPU per request, held connections.
//! - [`cache`]: the cache workloads (hit, mixed) beside nginx.
//! - [`fanout`]: one control plane, many simulated data-plane streams.
//! - [`report`]: the JSON result file and the markdown table.
//!
//! [`run`] does a whole run for [`BenchOptions`]; the binary and the quick
//! test both call it.

pub mod backend;
pub mod binaries;
pub mod cache;
pub mod error;
pub mod fanout;
pub mod measure;
pub mod process;
pub mod procfs;
pub mod report;
pub mod tools;
pub mod variants;

use std::path::PathBuf;
use std::time::Duration;

pub use error::BenchError;
use report::{BenchResults, Machine, ProxyResults, Settings, VariantRun};
use tools::InstallPolicy;
use variants::{Backend, Programs, RunningVariant, Variant, VariantContext};

/// What a run measures and how.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// `quick` or `full` (only a label in the results).
    pub mode: String,
    /// Measure the proxy overhead.
    pub proxy: bool,
    /// Measure snapshot fan-out.
    pub fanout: bool,
    /// Measure the cache workloads.
    pub cache: bool,
    /// Repetitions of every variant (the figures are medians).
    pub reps: usize,
    /// Length of each wrk run and each fixed-rate run.
    pub duration: Duration,
    /// wrk warm-up before each measured run (zero: none).
    pub warmup: Duration,
    /// wrk connections.
    pub wrk_connections: usize,
    /// Keep-alive client connections held for the memory figure.
    pub held_connections: usize,
    /// Fixed rates (req/s) for the latency figures.
    pub rates: Vec<u32>,
    /// Simulated data planes in the fan-out run.
    pub fanout_streams: usize,
    /// Upstreams in the fan-out routing table.
    pub fanout_upstreams: usize,
    /// Changes measured in the fan-out run.
    pub fanout_rounds: usize,
    /// Data-plane worker threads.
    pub worker_threads: usize,
    /// Whether missing tools are installed.
    pub install: InstallPolicy,
    /// Whether oha is wanted (latency figures).
    pub want_oha: bool,
    /// Build Meridian with `--release` (else the dev profile).
    pub release: bool,
    /// The `meridian-bench` executable, which runs the backend process.
    pub bench_exe: PathBuf,
    /// Where `results.json` and `results.md` go.
    pub out_dir: PathBuf,
}

impl BenchOptions {
    /// The full run of issue 4: 3 repetitions, 10 s runs, 64 connections,
    /// 10,000 held connections, 5k and 20k req/s, 1,000 streams and 10,000
    /// upstreams; installs missing tools; release build.
    pub fn full(bench_exe: PathBuf) -> BenchOptions {
        BenchOptions {
            mode: "full".into(),
            proxy: true,
            fanout: true,
            cache: true,
            reps: 3,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            wrk_connections: 64,
            held_connections: 10_000,
            rates: vec![5_000, 20_000],
            fanout_streams: 1_000,
            fanout_upstreams: 10_000,
            fanout_rounds: 6,
            worker_threads: 1,
            install: InstallPolicy::Install,
            want_oha: true,
            release: true,
            bench_exe,
            out_dir: binaries::target_dir().join("bench"),
        }
    }

    /// A run of seconds that exercises every part: one repetition, 1 s runs,
    /// few connections, a small fan-out; only finds tools (oha optional);
    /// Meridian built in the same profile as this code.
    pub fn quick(bench_exe: PathBuf) -> BenchOptions {
        BenchOptions {
            mode: "quick".into(),
            reps: 1,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            wrk_connections: 16,
            held_connections: 200,
            rates: vec![1_000],
            fanout_streams: 20,
            fanout_upstreams: 200,
            fanout_rounds: 2,
            install: InstallPolicy::FindOnly,
            release: !cfg!(debug_assertions),
            out_dir: binaries::target_dir().join("bench").join("quick"),
            ..BenchOptions::full(bench_exe)
        }
    }
}

/// CPU lists for the load generator and for the proxy + backend.
#[derive(Debug, Clone)]
struct Pinning {
    load: Option<String>,
    proxy: Option<String>,
    text: String,
}

fn pinning(cpus: usize) -> Pinning {
    if cpus >= 2 {
        let last = cpus - 1;
        let load = if last == 1 {
            "0".to_owned()
        } else {
            format!("0-{}", last - 1)
        };
        Pinning {
            text: format!(
                "load generator (wrk, oha) on CPU {load}; proxy under test and backend on CPU {last} (taskset -c); \
                 fan-out unpinned"
            ),
            load: Some(load),
            proxy: Some(last.to_string()),
        }
    } else {
        Pinning {
            load: None,
            proxy: None,
            text: "unpinned (only one CPU)".into(),
        }
    }
}

/// Runs the benchmark, writes `results.json` + `results.md` into
/// `opts.out_dir`, and returns the results. Every process started is stopped
/// before it returns, also on error (the work directory with the logs is then
/// kept and named in the error).
pub async fn run(opts: &BenchOptions) -> Result<BenchResults, BenchError> {
    let started_unix_ms = meridian_common::time::unix_ms();
    let machine = Machine::describe();
    let load_at_start = report::load_average();
    let pin = pinning(machine.cpus);
    let mut notes = Vec::new();

    // Every client connection of the memory figure is a descriptor here,
    // and the children (backend, proxies) inherit the raised limit.
    let nofile =
        rlimit::increase_nofile_limit(u64::MAX).map_err(BenchError::io("raise RLIMIT_NOFILE"))?;
    let need = opts.held_connections as u64 + 1_000;
    if nofile < need {
        return Err(BenchError::Tool(format!(
            "the open-file limit is {nofile}, below the {need} needed to hold {} connections; raise the hard limit \
             (ulimit -Hn) or lower the held connections",
            opts.held_connections
        )));
    }

    let tools = if opts.proxy || opts.cache {
        Some(tools::find_or_install(opts.install, opts.want_oha)?)
    } else {
        None
    };
    if opts.release && cfg!(debug_assertions) {
        notes.push(
            "meridian-bench itself (and so the backend) is a debug build: run it with --release"
                .into(),
        );
    }
    let built = binaries::build(opts.release)?;

    let work = tempfile::Builder::new()
        .prefix("meridian-bench-")
        .tempdir()
        .map_err(BenchError::io("create the work directory"))?;
    let outcome = run_in(opts, &pin, tools.as_ref(), &built, work.path(), &mut notes).await;
    let (proxy, cache, fanout) = match outcome {
        Ok(parts) => parts,
        Err(e) => {
            // Keep the logs the error points at.
            let kept = work.keep();
            eprintln!("meridian-bench: logs kept in {}", kept.display());
            return Err(e);
        }
    };
    let results = BenchResults {
        mode: opts.mode.clone(),
        started_unix_ms,
        machine,
        pinning: pin.text,
        load_average: [load_at_start, report::load_average()],
        settings: Settings {
            reps: opts.reps,
            duration_s: opts.duration.as_secs_f64(),
            wrk_connections: opts.wrk_connections,
            held_connections: opts.held_connections,
            rates: opts.rates.clone(),
            worker_threads: opts.worker_threads,
            profile: if opts.release { "release" } else { "dev" }.into(),
        },
        tools: tools.map(|t| t.notes).unwrap_or_default(),
        notes,
        proxy,
        fanout,
        cache,
    };
    let (json, md) = results.write(&opts.out_dir)?;
    eprintln!(
        "meridian-bench: wrote {} and {}",
        json.display(),
        md.display()
    );
    Ok(results)
}

async fn run_in(
    opts: &BenchOptions,
    pin: &Pinning,
    tools: Option<&tools::Tools>,
    built: &binaries::MeridianBinaries,
    work: &std::path::Path,
    notes: &mut Vec<String>,
) -> Result<Parts, BenchError> {
    let backend = Backend::start(&opts.bench_exe, pin.proxy.as_deref(), work)?;
    let (proxy, cache) = match tools {
        Some(tools) => {
            let ctx = variant_context(opts, pin, tools, built, &backend, work);
            let proxy = if opts.proxy {
                Some(proxy_benchmark(opts, pin, tools, &ctx, &backend, notes).await?)
            } else {
                None
            };
            let cache = if opts.cache {
                Some(cache::run(opts, &ctx, &tools.wrk, pin.load.as_deref(), &backend).await?)
            } else {
                None
            };
            (proxy, cache)
        }
        None => (None, None),
    };
    let fanout = if opts.fanout {
        eprintln!(
            "meridian-bench: fan-out: {} streams, {} upstreams",
            opts.fanout_streams, opts.fanout_upstreams
        );
        Some(
            fanout::run(&fanout::FanoutOptions {
                streams: opts.fanout_streams,
                upstreams: opts.fanout_upstreams,
                rounds: opts.fanout_rounds,
                control: built.control.clone(),
                backend: backend.addr,
                work_dir: work.join("fanout"),
            })
            .await?,
        )
    } else {
        None
    };
    drop(backend);
    Ok((proxy, cache, fanout))
}

/// What a run measured, by part.
type Parts = (
    Option<ProxyResults>,
    Option<cache::CacheResults>,
    Option<fanout::FanoutResult>,
);

fn variant_context(
    opts: &BenchOptions,
    pin: &Pinning,
    tools: &tools::Tools,
    built: &binaries::MeridianBinaries,
    backend: &Backend,
    work: &std::path::Path,
) -> VariantContext {
    VariantContext {
        programs: Programs {
            bench: opts.bench_exe.clone(),
            control: built.control.clone(),
            proxy: built.proxy.clone(),
            nginx: tools.nginx.clone(),
        },
        backend: backend.addr,
        proxy_cpus: pin.proxy.clone(),
        worker_threads: opts.worker_threads,
        work_dir: work.to_path_buf(),
    }
}

async fn proxy_benchmark(
    opts: &BenchOptions,
    pin: &Pinning,
    tools: &tools::Tools,
    ctx: &VariantContext,
    backend: &Backend,
    notes: &mut Vec<String>,
) -> Result<ProxyResults, BenchError> {
    if tools.oha.is_none() && opts.want_oha {
        notes.push("oha missing: fixed-rate latency figures skipped".into());
    }
    let work = ctx.work_dir.as_path();
    let mut runs = Vec::new();
    for rep in 0..opts.reps {
        // Alternate the order, so no variant always runs first (cold) or
        // last (after the others warmed the backend and the caches).
        let mut order = Variant::ALL.to_vec();
        if rep % 2 == 1 {
            order.reverse();
        }
        for (position, variant) in order.into_iter().enumerate() {
            eprintln!("meridian-bench: rep {}/{}: {variant}", rep + 1, opts.reps);
            let mut running = variants::start(variant, ctx, &format!("{variant}-{rep}")).await?;
            let run = measure_variant(opts, pin, tools, backend, &mut running, work, rep, position)
                .await?;
            if run.throughput.errors > 0 {
                notes.push(format!(
                    "{variant} rep {rep}: {} of {} wrk requests failed",
                    run.throughput.errors, run.throughput.requests
                ));
            }
            runs.push(run);
            drop(running);
        }
    }
    Ok(ProxyResults::summarise(
        runs,
        &opts.rates,
        opts.held_connections,
    ))
}

/// One wrk run through `running`, with the CPU the proxy processes and the
/// backend spent on it: (throughput, proxy µs per request, backend µs per
/// request). The CPU is read just before and after, so it covers exactly
/// the requests wrk counted.
fn wrk_with_cpu(
    running: &mut RunningVariant,
    backend: &Backend,
    wrk_run: &measure::WrkRun<'_>,
) -> Result<(measure::Throughput, Option<f64>, f64), BenchError> {
    let ticks = procfs::clock_ticks_per_second() as f64;
    let backend_pid = backend.process.pid();
    let proxy_before = running.proxy_cpu_ticks()?;
    let backend_before = procfs::cpu_ticks(backend_pid)?;
    let throughput = measure::wrk(wrk_run, &running.url)?;
    let proxy_after = running.proxy_cpu_ticks()?;
    let backend_after = procfs::cpu_ticks(backend_pid)?;
    running.check_alive()?;
    let requests = throughput.requests.max(1) as f64;
    let per_req =
        |before: u64, after: u64| after.saturating_sub(before) as f64 * 1e6 / ticks / requests;
    Ok((
        throughput,
        proxy_before.zip(proxy_after).map(|(b, a)| per_req(b, a)),
        per_req(backend_before, backend_after),
    ))
}

#[allow(clippy::too_many_arguments)]
async fn measure_variant(
    opts: &BenchOptions,
    pin: &Pinning,
    tools: &tools::Tools,
    backend: &Backend,
    running: &mut RunningVariant,
    work: &std::path::Path,
    rep: usize,
    position: usize,
) -> Result<VariantRun, BenchError> {
    let rss_idle_kib = running.proxy_rss_kib()?;
    let wrk_dir = work.join(format!("{}-{rep}", running.variant));
    let script = measure::post_script(measure::BLOCK_NUMBER_BODY);
    let wrk_run = measure::WrkRun {
        script: &script,
        wrk: &tools.wrk,
        cpus: pin.load.as_deref(),
        connections: opts.wrk_connections,
        duration: opts.duration,
        work_dir: &wrk_dir,
    };
    if !opts.warmup.is_zero() {
        measure::wrk(
            &measure::WrkRun {
                duration: opts.warmup,
                ..wrk_run.clone()
            },
            &running.url,
        )?;
    }
    let (throughput, proxy_cpu_us_per_req, backend_cpu_us_per_req) =
        wrk_with_cpu(running, backend, &wrk_run)?;

    let mut latency = Vec::new();
    if let Some(oha) = &tools.oha {
        for &rate in &opts.rates {
            latency.push(measure::oha(
                oha,
                pin.load.as_deref(),
                &running.url,
                rate,
                opts.duration,
            )?);
        }
        running.check_alive()?;
    }

    let rss_conns_kib = if running.proxy_pids.is_empty() {
        None
    } else {
        let addr = running.authority().parse().map_err(|e| {
            BenchError::measure(
                "held connections",
                format!("bad address in {}: {e}", running.url),
            )
        })?;
        let held = measure::hold_connections(
            addr,
            &format!("/{}", variants::NETWORK),
            opts.held_connections,
        )
        .await?;
        let rss = running.proxy_rss_kib()?;
        drop(held);
        rss
    };
    running.check_alive()?;
    Ok(VariantRun {
        variant: running.variant,
        rep,
        position,
        throughput,
        proxy_cpu_us_per_req,
        backend_cpu_us_per_req,
        latency,
        rss_idle_kib,
        rss_conns_kib,
    })
}
