//! Running the real control plane and data planes in-process, on 127.0.0.1:0.
//!
//! Tests describe networks with [`NetworkSpec`], render the `control.toml`
//! of issue 2 with [`control_toml`] (so the file format itself is exercised),
//! and start the planes through their libraries' `start` functions, exactly
//! what the binaries call. Helpers here panic on failure: they are test
//! support, and a panic is the test failing with a message.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use meridian_common::snapshot::Version;
use meridian_control_plane::app::ControlPlane;
use meridian_control_plane::config::ControlConfig;
use meridian_data_plane::app::DataPlane;
use meridian_data_plane::config::ProxyConfig;
use meridian_proto::v1::admin_service_client::AdminServiceClient;
use meridian_proto::v1::snapshot_service_client::SnapshotServiceClient;
use meridian_proto::v1::{
    ListDataPlanesRequest, ListUpstreamsRequest, UpstreamState, UpstreamStatus,
};
use tonic::transport::Channel;

pub use meridian_test_kit::poll::{eventually, try_eventually};
use meridian_test_kit::rpc::{RpcClient, RpcResponse, request_body};

/// A generous bound for conditions that normally hold within a second.
pub const SETTLE: Duration = Duration::from_secs(15);

/// One `[[networks.upstreams]]` entry.
#[derive(Debug, Clone)]
pub struct UpstreamSpec {
    /// Unique within its network; what `x-handled-by` shows.
    pub id: String,
    /// The node's JSON-RPC URL.
    pub url: String,
    /// Region the node is in; data planes of that region prefer it.
    pub region: String,
    /// Relative share of traffic (>= 1).
    pub weight: u32,
    /// `roles`; unset: the default (read and write).
    pub roles: Option<Vec<String>>,
}

/// One `[[networks]]` entry, with test-friendly defaults: probes every
/// 100 ms with a 1 s deadline, `healthy_after = 1`, `unhealthy_after = 2`,
/// `max_lag_blocks = 10`.
#[derive(Debug, Clone)]
pub struct NetworkSpec {
    /// The URL path segment clients use.
    pub id: String,
    /// The chain kind (`chain = …`); `"evm"` unless set.
    pub chain: String,
    /// Host names the network is served at (`hosts = […]`).
    pub hosts: Vec<String>,
    /// Expected chain id; unset lets the control plane learn it.
    pub chain_id: Option<u64>,
    /// Reference and fallback node URL.
    pub leader: Option<String>,
    /// Time between probe rounds.
    pub probe_interval_ms: u64,
    /// Deadline of one probe; unset: the control plane's default.
    pub probe_timeout_ms: Option<u64>,
    /// More blocks behind than this is lagging.
    pub max_lag_blocks: u64,
    /// Consecutive passing probes before an upstream takes traffic.
    pub healthy_after: u32,
    /// Consecutive failing probes before an upstream leaves rotation.
    pub unhealthy_after: u32,
    /// Body limit data planes enforce; unset: their default (1 MiB).
    pub max_body_bytes: Option<u64>,
    /// Further request-policy fields, as `key = value` TOML lines.
    pub policy: Vec<(String, String)>,
    /// `[networks.cache]` fields, as `key = value` TOML lines.
    pub cache: Vec<(String, String)>,
    /// The `[[networks.upstreams]]` entries.
    pub upstreams: Vec<UpstreamSpec>,
}

impl NetworkSpec {
    /// A network `id` with the test defaults and no upstreams.
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            chain: "evm".to_owned(),
            hosts: Vec::new(),
            chain_id: None,
            leader: None,
            probe_interval_ms: 100,
            // Generous, so a loaded CI machine does not fail probes that
            // are merely slow; tests of timeouts set their own.
            probe_timeout_ms: Some(1_000),
            max_lag_blocks: 10,
            healthy_after: 1,
            unhealthy_after: 2,
            max_body_bytes: None,
            policy: Vec::new(),
            cache: Vec::new(),
            upstreams: Vec::new(),
        }
    }

    /// The network's chain kind (`"icon"`, …).
    pub fn chain(mut self, kind: &str) -> Self {
        kind.clone_into(&mut self.chain);
        self
    }

    /// Serves the network at `host` too (`hosts = […]`).
    pub fn host(mut self, host: &str) -> Self {
        self.hosts.push(host.to_owned());
        self
    }

    /// Adds an upstream with weight 1.
    pub fn upstream(mut self, id: &str, url: &str, region: &str) -> Self {
        self.upstreams.push(UpstreamSpec {
            id: id.to_owned(),
            url: url.to_owned(),
            region: region.to_owned(),
            weight: 1,
            roles: None,
        });
        self
    }

    /// Adds an upstream with weight 1 and these roles (`"archive"`, …).
    pub fn upstream_with_roles(
        mut self,
        id: &str,
        url: &str,
        region: &str,
        roles: &[&str],
    ) -> Self {
        self.upstreams.push(UpstreamSpec {
            id: id.to_owned(),
            url: url.to_owned(),
            region: region.to_owned(),
            weight: 1,
            roles: Some(roles.iter().map(|r| (*r).to_owned()).collect()),
        });
        self
    }

    /// Sets a request-policy field, its value written as TOML
    /// (`.policy("archive_after_blocks", "10")`).
    pub fn policy(mut self, key: &str, toml_value: &str) -> Self {
        self.policy.push((key.to_owned(), toml_value.to_owned()));
        self
    }

    /// Sets a `[networks.cache]` field, its value written as TOML
    /// (`.cache("head_ttl_ms", "300")`).
    pub fn cache(mut self, key: &str, toml_value: &str) -> Self {
        self.cache.push((key.to_owned(), toml_value.to_owned()));
        self
    }

    /// Sets the expected chain id.
    pub fn chain_id(mut self, chain_id: u64) -> Self {
        self.chain_id = Some(chain_id);
        self
    }

    /// Sets the leader URL.
    pub fn leader(mut self, url: &str) -> Self {
        self.leader = Some(url.to_owned());
        self
    }

    /// Sets the time between probe rounds.
    pub fn probe_interval_ms(mut self, ms: u64) -> Self {
        self.probe_interval_ms = ms;
        self
    }

    /// Sets the deadline of one probe.
    pub fn probe_timeout_ms(mut self, ms: u64) -> Self {
        self.probe_timeout_ms = Some(ms);
        self
    }

    /// Sets the lag beyond which an upstream is lagging.
    pub fn max_lag_blocks(mut self, blocks: u64) -> Self {
        self.max_lag_blocks = blocks;
        self
    }

    /// Sets the passing probes needed to take traffic.
    pub fn healthy_after(mut self, n: u32) -> Self {
        self.healthy_after = n;
        self
    }

    /// Sets the failing probes needed to leave rotation.
    pub fn unhealthy_after(mut self, n: u32) -> Self {
        self.unhealthy_after = n;
        self
    }

    /// Sets the data planes' body limit for this network.
    pub fn max_body_bytes(mut self, bytes: u64) -> Self {
        self.max_body_bytes = Some(bytes);
        self
    }
}

/// A TOML basic string literal (quotes, backslashes and controls escaped).
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `control.toml` of issue 2 for `networks`, with both listeners on
/// 127.0.0.1:0 and the sled store in `data_dir`.
pub fn control_toml(data_dir: &Path, networks: &[NetworkSpec]) -> String {
    control_toml_on(SocketAddr::from(([127, 0, 0, 1], 0)), data_dir, networks)
}

/// Like [`control_toml`] with the gRPC listener on `grpc_listen`, so a
/// restarted control plane takes the port its data planes dial.
pub fn control_toml_on(
    grpc_listen: SocketAddr,
    data_dir: &Path,
    networks: &[NetworkSpec],
) -> String {
    control_toml_at(
        grpc_listen,
        SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir,
        networks,
    )
}

/// The `control.toml` with both listener addresses given.
pub fn control_toml_at(
    grpc_listen: SocketAddr,
    http_listen: SocketAddr,
    data_dir: &Path,
    networks: &[NetworkSpec],
) -> String {
    let mut t = String::new();
    t.push_str("[server]\n");
    t.push_str(&format!("grpc_listen = \"{grpc_listen}\"\n"));
    t.push_str(&format!("http_listen = \"{http_listen}\"\n"));
    t.push_str(&format!(
        "data_dir = {}\n",
        quoted(&data_dir.to_string_lossy())
    ));
    for n in networks {
        t.push_str("\n[[networks]]\n");
        t.push_str(&format!("id = {}\n", quoted(&n.id)));
        t.push_str(&format!("chain = {}\n", quoted(&n.chain)));
        if !n.hosts.is_empty() {
            let hosts: Vec<String> = n.hosts.iter().map(|h| quoted(h)).collect();
            t.push_str(&format!("hosts = [{}]\n", hosts.join(", ")));
        }
        if let Some(chain_id) = n.chain_id {
            t.push_str(&format!("chain_id = {chain_id}\n"));
        }
        if let Some(leader) = &n.leader {
            t.push_str(&format!("leader = {}\n", quoted(leader)));
        }
        t.push_str(&format!("probe_interval_ms = {}\n", n.probe_interval_ms));
        if let Some(ms) = n.probe_timeout_ms {
            t.push_str(&format!("probe_timeout_ms = {ms}\n"));
        }
        t.push_str(&format!("max_lag_blocks = {}\n", n.max_lag_blocks));
        t.push_str(&format!("healthy_after = {}\n", n.healthy_after));
        t.push_str(&format!("unhealthy_after = {}\n", n.unhealthy_after));
        if let Some(bytes) = n.max_body_bytes {
            t.push_str(&format!("max_body_bytes = {bytes}\n"));
        }
        for (key, value) in &n.policy {
            t.push_str(&format!("{key} = {value}\n"));
        }
        if !n.cache.is_empty() {
            t.push_str("\n[networks.cache]\n");
            for (key, value) in &n.cache {
                t.push_str(&format!("{key} = {value}\n"));
            }
        }
        for u in &n.upstreams {
            t.push_str("\n[[networks.upstreams]]\n");
            t.push_str(&format!("id = {}\n", quoted(&u.id)));
            t.push_str(&format!("url = {}\n", quoted(&u.url)));
            t.push_str(&format!("region = {}\n", quoted(&u.region)));
            t.push_str(&format!("weight = {}\n", u.weight));
            if let Some(roles) = &u.roles {
                let roles: Vec<String> = roles.iter().map(|r| quoted(r)).collect();
                t.push_str(&format!("roles = [{}]\n", roles.join(", ")));
            }
        }
    }
    t
}

/// Parses `toml` as `control.toml` and starts a control plane on it.
pub async fn start_control_plane(toml: &str) -> ControlPlane {
    let config = ControlConfig::from_toml_str(toml, Path::new("control.toml"))
        .unwrap_or_else(|e| panic!("test control.toml is invalid: {e}\n{toml}"));
    ControlPlane::start(config)
        .await
        .unwrap_or_else(|e| panic!("control plane did not start: {e}"))
}

/// Starts a control plane on `toml` whose listener addresses were used
/// before (a restart): the port can be briefly unavailable, so binding is
/// retried within [`SETTLE`].
pub async fn restart_control_plane(toml: &str) -> ControlPlane {
    let start = std::time::Instant::now();
    loop {
        let config = ControlConfig::from_toml_str(toml, Path::new("control.toml"))
            .unwrap_or_else(|e| panic!("test control.toml is invalid: {e}\n{toml}"));
        match ControlPlane::start(config).await {
            Ok(cp) => return cp,
            Err(e) if start.elapsed() < SETTLE => {
                tracing::debug!(error = %e, "control plane restart: retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("control plane did not restart: {e}"),
        }
    }
}

/// `http://<grpc addr>` of a control plane: what data planes and admin clients dial.
pub fn control_plane_url(cp: &ControlPlane) -> String {
    format!("http://{}", cp.grpc_addr())
}

/// A data-plane configuration for tests: listeners on 127.0.0.1:0, a unique
/// id, and fast reconnects so restarts of the control plane show quickly.
pub fn proxy_config(cp_url: &str, region: &str, state_dir: &Path) -> ProxyConfig {
    let mut config = ProxyConfig::new(cp_url, region, state_dir);
    config.dataplane_id = format!("{region}-{}", unique_suffix());
    config.reconnect_min = Duration::from_millis(50);
    config.reconnect_max = Duration::from_millis(300);
    config.control_connect_timeout = Duration::from_secs(1);
    config.drain_timeout = Duration::from_secs(1);
    // The scenarios on this config test routing: which node answers each
    // call. The cache's own scenarios turn it on.
    config.cache_max_bytes = 0;
    config
}

/// Starts a data plane of `region` on [`proxy_config`].
pub async fn start_data_plane(cp_url: &str, region: &str, state_dir: &Path) -> DataPlane {
    start_data_plane_with(proxy_config(cp_url, region, state_dir)).await
}

/// Starts a data plane on `config`.
pub async fn start_data_plane_with(config: ProxyConfig) -> DataPlane {
    DataPlane::start(config)
        .await
        .unwrap_or_else(|e| panic!("data plane did not start: {e}"))
}

fn unique_suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// `http://<listen addr>/<network>`: where clients POST.
pub fn network_url(dp: &DataPlane, network: &str) -> String {
    format!("http://{}/{network}", dp.listen_addr())
}

/// `http://<admin addr><path>` of a data plane.
pub fn dp_admin_url(dp: &DataPlane, path: &str) -> String {
    format!("http://{}{path}", dp.admin_addr())
}

/// The value of `series` (a metric name with its labels, exactly as
/// `/metrics` writes them, e.g. `name{network="eth"}`) on `dp`'s
/// `/metrics`; `None` while the data plane does not answer or has no such
/// series.
pub async fn dp_metric(client: &RpcClient, dp: &DataPlane, series: &str) -> Option<f64> {
    let metrics = client.get(dp_admin_url(dp, "/metrics")).await.ok()?;
    metrics.text().lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// An admin gRPC client connected to `cp`.
pub async fn admin_client(cp: &ControlPlane) -> AdminServiceClient<Channel> {
    let url = control_plane_url(cp);
    AdminServiceClient::connect(url.clone())
        .await
        .unwrap_or_else(|e| panic!("admin client cannot connect to {url}: {e}"))
}

/// A snapshot-stream client connected to `cp` (a scripted fake data plane).
pub async fn snapshot_client(cp: &ControlPlane) -> SnapshotServiceClient<Channel> {
    let url = control_plane_url(cp);
    SnapshotServiceClient::connect(url.clone())
        .await
        .unwrap_or_else(|e| panic!("snapshot client cannot connect to {url}: {e}"))
}

/// Every upstream of `network` as the control plane reports it.
pub async fn list_upstreams(
    admin: &mut AdminServiceClient<Channel>,
    network: &str,
) -> Vec<UpstreamStatus> {
    admin
        .list_upstreams(ListUpstreamsRequest {
            network_id: network.to_owned(),
        })
        .await
        .unwrap_or_else(|e| panic!("ListUpstreams({network}) failed: {e}"))
        .into_inner()
        .upstreams
}

/// The state and reason of one upstream, `None` if the control plane does not know it.
pub async fn upstream_state(
    admin: &mut AdminServiceClient<Channel>,
    network: &str,
    upstream: &str,
) -> Option<(UpstreamState, String)> {
    list_upstreams(admin, network)
        .await
        .into_iter()
        .filter(|s| s.network_id == network)
        .filter_map(|s| s.upstream)
        .find(|u| u.id == upstream)
        .map(|u| (u.state(), u.reason))
}

/// Waits until every listed upstream of `network` is healthy.
pub async fn wait_healthy(admin: &mut AdminServiceClient<Channel>, network: &str, ids: &[&str]) {
    let what = format!("upstreams {ids:?} of {network} healthy");
    eventually(&what, SETTLE, || {
        let mut admin = admin.clone();
        async move {
            let all = list_upstreams(&mut admin, network).await;
            ids.iter().all(|id| {
                all.iter()
                    .filter_map(|s| s.upstream.as_ref())
                    .any(|u| u.id == *id && u.state() == UpstreamState::Healthy)
            })
        }
    })
    .await;
}

/// Every data plane the control plane knows, as `ListDataPlanes` reports them.
pub async fn list_data_planes(
    admin: &mut AdminServiceClient<Channel>,
) -> Vec<meridian_proto::v1::DataPlaneStatus> {
    admin
        .list_data_planes(ListDataPlanesRequest {})
        .await
        .unwrap_or_else(|e| panic!("ListDataPlanes failed: {e}"))
        .into_inner()
        .dataplanes
}

/// Waits until every data plane the control plane lists has ACKed
/// `version` or a newer one. An ACK is sent only once a snapshot is applied *and* persisted,
/// so after this a data plane restarted from its state dir holds it.
pub async fn wait_acked(admin: &mut AdminServiceClient<Channel>, version: Version) {
    let what = format!("every data plane ACKed {version}");
    eventually(&what, SETTLE, || {
        let mut admin = admin.clone();
        async move {
            let dps = list_data_planes(&mut admin).await;
            !dps.is_empty()
                && dps
                    .iter()
                    .all(|d| Version::from(d.acked_version) >= version)
        }
    })
    .await;
}

/// Waits until `dp` serves the control plane's current version.
pub async fn wait_in_sync(cp: &ControlPlane, dp: &DataPlane) -> Version {
    eventually(
        "the data plane holds the control plane's version",
        SETTLE,
        || async {
            let v = cp.current_version();
            !v.is_none() && dp.snapshot_version() == v
        },
    )
    .await;
    dp.snapshot_version()
}

/// Sends a read (`net_version`, which probes never use, so a node's
/// `client_requests()` counts it) through `dp` to `network`.
pub async fn read_through(client: &RpcClient, dp: &DataPlane, network: &str) -> RpcResponse {
    client
        .post(
            network_url(dp, network),
            request_body(7, "net_version", "[]"),
        )
        .await
        .unwrap_or_else(|e| panic!("request through the data plane failed: {e}"))
}

/// Waits until a read through `dp` to `network` is answered by `upstream`
/// (per `x-handled-by`), with a JSON-RPC result.
pub async fn wait_handled_by(
    client: &RpcClient,
    dp: &DataPlane,
    network: &str,
    upstream: &str,
    bound: Duration,
) -> Duration {
    let what = format!(
        "{network} served by {upstream} through {}",
        dp.listen_addr()
    );
    eventually(&what, bound, || async {
        let r = read_through(client, dp, network).await;
        r.status == 200 && r.handled_by() == Some(upstream) && r.json().get("result").is_some()
    })
    .await
}

/// Asserts `r` is a successful JSON-RPC answer (HTTP 200, a `result`, no `error`).
pub fn assert_result(r: &RpcResponse) {
    assert_eq!(
        r.status,
        200,
        "expected HTTP 200, got {}: {}",
        r.status,
        r.text()
    );
    let v = r.json();
    assert!(
        v.get("result").is_some() && v.get("error").is_none(),
        "expected a JSON-RPC result: {}",
        r.text()
    );
}

/// Logs to the test output when `RUST_LOG` is set (e.g. `RUST_LOG=debug`).
pub fn init_test_logs() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_toml_is_accepted_by_the_control_plane() {
        let dir = Path::new("/tmp/meridian \"quoted\"");
        let toml = control_toml(
            dir,
            &[NetworkSpec::new("eth-local")
                .chain_id(1337)
                .leader("http://127.0.0.1:8549")
                .probe_timeout_ms(50)
                .max_body_bytes(1024)
                .upstream("a", "http://127.0.0.1:18545", "eu")
                .upstream("b", "http://127.0.0.1:18546", "us")],
        );
        let config = ControlConfig::from_toml_str(&toml, Path::new("control.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{toml}"));
        assert_eq!(config.server.data_dir, dir);
        assert_eq!(config.networks.len(), 1);
        assert_eq!(config.networks[0].upstreams.len(), 2);
        assert_eq!(config.networks[0].healthy_after, 1);
    }
}
