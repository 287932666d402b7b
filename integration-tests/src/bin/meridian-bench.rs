//! `meridian-bench`: Meridian's proxy overhead next to nginx and direct, and
//! snapshot fan-out. See `docs/BENCHMARKS.md`.
//!
//! ```text
//! cargo run --release -p meridian-integration-tests --bin meridian-bench -- --all
//! cargo run --release -p meridian-integration-tests --bin meridian-bench -- --quick
//! ```
//!
//! `meridian-bench backend --port N` runs the mock EVM backend alone (the
//! harness starts it that way, pinned with taskset).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Parser, Subcommand};
use meridian_integration_tests::bench::{self, BenchOptions, backend, tools::InstallPolicy};

/// Benchmarks Meridian against nginx and direct, and measures snapshot fan-out.
#[derive(Debug, Parser)]
#[command(name = "meridian-bench", version)]
#[command(group(ArgGroup::new("mode").args(["all", "quick"])))]
#[command(group(ArgGroup::new("only").args(["proxy_only", "fanout_only", "cache_only"])))]
struct Cli {
    /// The full run: every figure, release build, installs missing tools (the default).
    #[arg(long)]
    all: bool,
    /// A run of seconds: short runs, few connections, small fan-out; installs nothing.
    #[arg(long)]
    quick: bool,
    /// Only the proxy overhead figures.
    #[arg(long)]
    proxy_only: bool,
    /// Only the snapshot fan-out figures.
    #[arg(long)]
    fanout_only: bool,
    /// Only the cache workloads (cache hit, mixed) beside nginx.
    #[arg(long)]
    cache_only: bool,
    /// Repetitions of every variant (figures are medians).
    #[arg(long)]
    reps: Option<usize>,
    /// Seconds of each measured run.
    #[arg(long)]
    duration: Option<u64>,
    /// Data-plane worker threads.
    #[arg(long)]
    worker_threads: Option<usize>,
    /// Directory for results.json and results.md (default target/bench, target/bench/quick).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Never install tools, only look for them.
    #[arg(long)]
    no_install: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the mock EVM backend on 127.0.0.1 until killed.
    Backend {
        /// Port to listen on (0: any free port; the address is printed).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Backend { port }) = cli.command {
        return match backend::run(port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("meridian-bench backend: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("meridian-bench: cannot find its own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut opts = if cli.quick {
        BenchOptions::quick(exe)
    } else {
        BenchOptions::full(exe)
    };
    opts.proxy = !cli.fanout_only && !cli.cache_only;
    opts.fanout = !cli.proxy_only && !cli.cache_only;
    opts.cache = !cli.fanout_only && !cli.proxy_only;
    if let Some(reps) = cli.reps {
        opts.reps = reps.max(1);
    }
    if let Some(secs) = cli.duration {
        opts.duration = Duration::from_secs(secs.max(1));
    }
    if let Some(n) = cli.worker_threads {
        opts.worker_threads = n.max(1);
    }
    if let Some(out) = cli.out {
        opts.out_dir = out;
    }
    if cli.no_install {
        opts.install = InstallPolicy::FindOnly;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("meridian-bench: cannot build the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench::run(&opts)) {
        Ok(results) => {
            println!("{}", results.markdown());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("meridian-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
