//! `meridian-proxy`: one data plane. Parses flags, builds the runtime and
//! the configuration, and hands over to `meridian_data_plane::app::run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use meridian_common::telemetry::{self, TelemetryArgs};
use meridian_data_plane::app;
use meridian_data_plane::config::{ProxyConfig, SharedTierOptions, default_dataplane_id};

// mimalloc's thread-local free lists make the request path's short-lived
// allocations (buffers, futures, header maps) cheaper than glibc's malloc,
// which profiles put at ~10% of the proxy's user-space time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Meridian data plane: routes JSON-RPC requests on the control plane's snapshots.
#[derive(Debug, Parser)]
#[command(name = "meridian-proxy", version)]
struct Args {
    /// gRPC address of the control plane.
    #[arg(
        long,
        env = "MERIDIAN_CONTROL_PLANE",
        default_value = "http://127.0.0.1:50051"
    )]
    control_plane: String,
    /// Region whose clients this proxy serves (same-region upstreams are preferred).
    #[arg(long, env = "MERIDIAN_REGION")]
    region: String,
    /// Client JSON-RPC listener.
    #[arg(long, env = "MERIDIAN_LISTEN", default_value = "127.0.0.1:8545")]
    listen: SocketAddr,
    /// A listener bound to one network, `NETWORK=ADDR` (repeatable; in the
    /// environment comma-separated): every request on it is for that
    /// network at any path, for clients that only speak to the root of an
    /// address (ICON's iconsdk; docs/chains.md).
    #[arg(long = "network-listen", env = "MERIDIAN_NETWORK_LISTEN", value_delimiter = ',',
          value_parser = meridian_data_plane::config::parse_network_listen)]
    network_listen: Vec<(String, SocketAddr)>,
    /// Admin listener (/health, /ready, /metrics).
    #[arg(long, env = "MERIDIAN_ADMIN_LISTEN", default_value = "127.0.0.1:9545")]
    admin_listen: SocketAddr,
    /// Directory for the last applied snapshot [default: ./var/proxy-<region>].
    #[arg(long, env = "MERIDIAN_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Identity reported to the control plane [default: <region>-<hostname>].
    #[arg(long = "id", env = "MERIDIAN_DATAPLANE_ID")]
    id: Option<String>,
    /// Tokio worker threads [default: one per core].
    #[arg(long, env = "MERIDIAN_WORKER_THREADS")]
    worker_threads: Option<usize>,
    /// Bound of the response cache in bytes, all networks together (0: no
    /// cache; docs/caching.md).
    #[arg(long, env = "MERIDIAN_CACHE_MAX_BYTES", default_value_t = 256 * 1024 * 1024)]
    cache_max_bytes: u64,
    /// The region's shared cache tier, a Redis its proxies share, e.g.
    /// `redis://10.0.0.5:6379/0` (only immutable answers go there;
    /// docs/caching.md).
    #[arg(long, env = "MERIDIAN_CACHE_REDIS")]
    cache_redis: Option<String>,
    /// Longest a lookup waits for the shared tier before it is a miss, ms.
    #[arg(long, env = "MERIDIAN_CACHE_REDIS_TIMEOUT_MS", default_value_t = 20)]
    cache_redis_timeout_ms: u64,
    /// How long the shared tier is not asked after its breaker opens, ms.
    #[arg(
        long,
        env = "MERIDIAN_CACHE_REDIS_COOLDOWN_MS",
        default_value_t = 5_000
    )]
    cache_redis_cooldown_ms: u64,
    /// How long an upstream's host name resolves to the same addresses
    /// before it is looked up again, ms (0: at every new connection).
    #[arg(long, env = "MERIDIAN_DNS_TTL_MS", default_value_t = 30_000)]
    dns_ttl_ms: u64,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("./var/proxy-{}", args.region)));
    let mut config = ProxyConfig::new(args.control_plane.clone(), args.region.clone(), state_dir);
    config.listen = args.listen;
    config.network_listen.clone_from(&args.network_listen);
    config.admin_listen = args.admin_listen;
    config.dataplane_id = args
        .id
        .clone()
        .unwrap_or_else(|| default_dataplane_id(&args.region));
    config.worker_threads = args.worker_threads;
    config.cache_max_bytes = args.cache_max_bytes;
    config.node_client.dns_ttl = Duration::from_millis(args.dns_ttl_ms);
    config.cache_redis = args.cache_redis.as_ref().map(|url| {
        let mut tier = SharedTierOptions::new(url.clone());
        tier.timeout = Duration::from_millis(args.cache_redis_timeout_ms.max(1));
        tier.breaker_cooldown = Duration::from_millis(args.cache_redis_cooldown_ms);
        tier
    });

    // One worker: a current-thread runtime runs every task on this thread
    // and skips the work-stealing scheduler's cross-thread bookkeeping.
    let mut runtime = match config.worker_threads {
        Some(n) if n <= 1 => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    runtime.enable_all();
    let runtime = match runtime.build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("meridian-proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let _telemetry = match telemetry::init("meridian-proxy", &args.telemetry) {
            Ok(guard) => guard,
            Err(e) => {
                eprintln!("meridian-proxy: {e}");
                return ExitCode::FAILURE;
            }
        };
        match app::run(config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "meridian-proxy failed");
                eprintln!("meridian-proxy: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
