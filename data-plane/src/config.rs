//! The data plane's configuration: where it listens, whom it asks for
//! snapshots, where it keeps the last good one, and a few timings.
//!
//! Built by the binary from flags (and `MERIDIAN_*` environment) or by tests
//! and the sandbox through [`ProxyConfig::new`] plus field updates. Routing
//! policy (limits, timeouts) is not here: it arrives per network in every
//! snapshot, so the control plane stays the single source of it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use meridian_common::node_client::NodeClientOptions;

use crate::balance::EjectionTimes;

/// Everything a data plane needs to start.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// gRPC address of the control plane, e.g. `http://127.0.0.1:50051`.
    pub control_plane: String,
    /// Region whose clients this data plane serves; upstreams in the same
    /// region are preferred.
    pub region: String,
    /// Client JSON-RPC listener (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Further client listeners, each bound to one network: every request
    /// on it is for that network at any path, so clients that only speak to
    /// the root of an address (ICON's iconsdk: `http://HOST:PORT/api/v3`)
    /// reach it (`--network-listen NETWORK=ADDR`, repeatable).
    pub network_listen: Vec<(String, SocketAddr)>,
    /// Admin listener for `/health`, `/ready` and `/metrics` (port 0 allowed).
    pub admin_listen: SocketAddr,
    /// Directory holding the last applied snapshot (`snapshot.pb`); created
    /// if missing.
    pub state_dir: PathBuf,
    /// Identity reported to the control plane; unique per deployment.
    pub dataplane_id: String,
    /// Tokio worker threads; read only by the binary's runtime builder
    /// (`None`: one per core).
    pub worker_threads: Option<usize>,
    /// Give up connecting to the control plane after this long.
    pub control_connect_timeout: Duration,
    /// HTTP/2 keepalive ping interval on the control-plane stream.
    pub control_keepalive_interval: Duration,
    /// A keepalive ping unanswered for this long declares the stream dead.
    pub control_keepalive_timeout: Duration,
    /// First reconnect delay after the control-plane stream ends.
    pub reconnect_min: Duration,
    /// Longest reconnect delay (the backoff doubles up to it, with jitter).
    pub reconnect_max: Duration,
    /// Largest snapshot message accepted from the control plane.
    pub max_snapshot_bytes: usize,
    /// Largest upstream answer the proxy buffers; larger answers fail the try.
    pub max_response_bytes: usize,
    /// Bound of the response cache, in bytes, shared by every network
    /// (0: no cache).
    pub cache_max_bytes: u64,
    /// The region's shared cache tier (Redis), if any.
    pub cache_redis: Option<SharedTierOptions>,
    /// Pooling and connect timeout of the client to upstream nodes.
    pub node_client: NodeClientOptions,
    /// On shutdown, how long open client connections may finish.
    pub drain_timeout: Duration,
    /// Cool-down of a locally ejected upstream: first (30 s) and longest
    /// (5 min); it doubles on each failed half-open trial.
    pub ejection: EjectionTimes,
}

impl ProxyConfig {
    /// A configuration with both listeners on `127.0.0.1:0` and default
    /// timings; the id defaults to `<region>-<hostname>`.
    pub fn new(
        control_plane: impl Into<String>,
        region: impl Into<String>,
        state_dir: impl Into<PathBuf>,
    ) -> Self {
        let region = region.into();
        let any_port = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        Self {
            control_plane: control_plane.into(),
            dataplane_id: default_dataplane_id(&region),
            region,
            listen: any_port,
            network_listen: Vec::new(),
            admin_listen: any_port,
            state_dir: state_dir.into(),
            worker_threads: None,
            control_connect_timeout: Duration::from_secs(2),
            control_keepalive_interval: Duration::from_secs(2),
            control_keepalive_timeout: Duration::from_secs(3),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            max_snapshot_bytes: 64 * 1024 * 1024,
            max_response_bytes: 64 * 1024 * 1024,
            cache_max_bytes: 256 * 1024 * 1024,
            cache_redis: None,
            node_client: NodeClientOptions::default(),
            drain_timeout: Duration::from_secs(5),
            ejection: EjectionTimes::default(),
        }
    }
}

/// Parses a `--network-listen` value: `NETWORK=ADDR`, e.g.
/// `icon-main=0.0.0.0:9000`.
pub fn parse_network_listen(value: &str) -> Result<(String, SocketAddr), String> {
    let (network, addr) = value
        .split_once('=')
        .ok_or_else(|| format!("{value:?} is not NETWORK=ADDR (e.g. icon-main=0.0.0.0:9000)"))?;
    if network.is_empty() || network.contains('/') {
        return Err(format!("{network:?} is not a network id"));
    }
    let addr = addr
        .parse()
        .map_err(|e| format!("{addr:?} is not a socket address ({e}), in {value:?}"))?;
    Ok((network.to_owned(), addr))
}

/// The shared cache tier of a region: a Redis its proxies share
/// (docs/caching.md).
#[derive(Debug, Clone)]
pub struct SharedTierOptions {
    /// `redis://[user:password@]host:port[/db]` (plain TCP: a region's Redis
    /// sits on its private network; `unix:///path` works too).
    pub url: String,
    /// Longest a lookup waits for Redis before it is a miss.
    pub timeout: Duration,
    /// Longest a pipeline of writes (which nobody waits for) may take.
    pub write_timeout: Duration,
    /// Longest a (re)connection attempt takes.
    pub connect_timeout: Duration,
    /// How long Redis is not asked after the breaker opens.
    pub breaker_cooldown: Duration,
}

impl SharedTierOptions {
    /// Options for `url` with the default timings (20 ms lookups, 5 s
    /// cool-down).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout: Duration::from_millis(20),
            write_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            breaker_cooldown: Duration::from_secs(5),
        }
    }
}

/// `<region>-<hostname>`, or `<region>-<random hex>` when the host name is
/// unknown, so two data planes never share an id by accident.
pub fn default_dataplane_id(region: &str) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()));
    match host {
        Some(host) => format!("{region}-{host}"),
        None => format!("{region}-{:08x}", rand::random::<u32>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_listeners_are_network_equals_address() {
        assert_eq!(
            parse_network_listen("icon-main=127.0.0.1:9000"),
            Ok((
                "icon-main".to_owned(),
                SocketAddr::from(([127, 0, 0, 1], 9000))
            ))
        );
        for bad in [
            "icon-main",
            "=127.0.0.1:9000",
            "icon-main=9000",
            "a/b=127.0.0.1:1",
        ] {
            assert!(parse_network_listen(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn new_binds_loopback_any_port_and_names_the_region() {
        let c = ProxyConfig::new("http://127.0.0.1:1", "eu", "/tmp/x");
        assert_eq!(c.listen.port(), 0);
        assert!(c.listen.ip().is_loopback());
        assert!(c.dataplane_id.starts_with("eu-"), "{}", c.dataplane_id);
    }
}
