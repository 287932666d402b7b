//! The sandbox: a whole Meridian deployment in one process, for a first look.
//!
//! One network of each chain kind Meridian serves: an EVM network on three
//! mock EVM nodes (one 50 blocks behind) and an ICON network on two mock
//! goloop nodes, all advancing one block per second; a control plane with
//! its sled store in a temporary directory; and data planes for regions eu,
//! us and ap, each also serving the ICON network at its own address (for
//! iconsdk). Everything binds 127.0.0.1, at fixed ports from a base port
//! (the binary's default) or at free ports (tests).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use meridian_control_plane::app::{ControlPlane, StartError as ControlStartError};
use meridian_control_plane::config::ControlConfig;
use meridian_data_plane::app::{DataPlane, StartError as DataStartError};
use meridian_data_plane::config::ProxyConfig;
use tokio::task::JoinHandle;

use crate::harness::{NetworkSpec, control_toml_at};
use meridian_test_kit::evm::{MockEvmNode, MockStartError};
use meridian_test_kit::icon::{CHANNEL, MockIconNode, PRep};
use meridian_test_kit::rpc::{RpcClient, request_body};

/// The EVM network the sandbox serves.
pub const NETWORK: &str = "eth-local";
/// The ICON network the sandbox serves.
pub const ICON_NETWORK: &str = "icon-local";
/// The ICON network id of the sandbox's mock goloop nodes.
pub const ICON_NID: u64 = 1;
/// The chain id of the sandbox's mock nodes.
pub const CHAIN_ID: u64 = 1337;
/// How far the lagging node stays behind.
pub const LAG_BLOCKS: u64 = 50;
/// The regions that get a data plane.
pub const REGIONS: [&str; 3] = ["eu", "us", "ap"];
/// Longest the sandbox waits for its data planes to serve before giving up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the sandbox listens.
///
/// With `base_port = Some(B)`: EVM nodes on B, B+1, B+2, ICON nodes on B+3,
/// B+4; the control plane's gRPC on B+10 and HTTP on B+11; data planes (eu,
/// us, ap) on B+20..B+22, their admin listeners on B+30..B+32, their ICON
/// listeners on B+40..B+42. `None`: free ports everywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxOptions {
    /// First of the fixed ports; `None`: free ports.
    pub base_port: Option<u16>,
}

impl SandboxOptions {
    fn addr(&self, offset: u16) -> Result<SocketAddr, SandboxError> {
        let port = match self.base_port {
            None => 0,
            Some(base) => base
                .checked_add(offset)
                .ok_or(SandboxError::PortRange(base))?,
        };
        Ok(SocketAddr::from(([127, 0, 0, 1], port)))
    }
}

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("--base-port {0} leaves no room for the sandbox's 43 ports")]
    PortRange(u16),
    #[error(transparent)]
    Node(#[from] MockStartError),
    #[error("temporary directory: {0}")]
    TempDir(#[source] std::io::Error),
    #[error("the sandbox's control.toml is invalid: {0}")]
    Config(#[from] meridian_common::config::ConfigError),
    #[error("control plane: {0}")]
    ControlPlane(#[from] ControlStartError),
    #[error("data plane: {0}")]
    DataPlane(#[from] DataStartError),
    #[error("data plane {region} did not serve {network} within {READY_TIMEOUT:?}")]
    NotReady {
        region: &'static str,
        network: &'static str,
    },
    #[error("waiting for Ctrl-C: {0}")]
    Signal(#[source] std::io::Error),
}

/// One mock node of the sandbox.
#[derive(Debug)]
pub struct SandboxNode {
    /// Upstream id in the control plane.
    pub id: &'static str,
    /// Region the node is declared in.
    pub region: &'static str,
    /// The running mock node.
    pub node: MockEvmNode,
}

/// One mock ICON node of the sandbox.
#[derive(Debug)]
pub struct SandboxIconNode {
    /// Upstream id in the control plane.
    pub id: &'static str,
    /// Region the node is declared in.
    pub region: &'static str,
    /// The running mock node.
    pub node: std::sync::Arc<MockIconNode>,
}

/// A running sandbox.
pub struct Sandbox {
    nodes: Vec<SandboxNode>,
    icon_nodes: Vec<SandboxIconNode>,
    control_plane: ControlPlane,
    data_planes: Vec<(&'static str, DataPlane)>,
    chain: JoinHandle<()>,
    // Dropped last: the sled store and the data planes' state live here.
    _dir: tempfile::TempDir,
}

impl Sandbox {
    /// Starts everything and waits until every data plane serves.
    pub async fn start(options: SandboxOptions) -> Result<Sandbox, SandboxError> {
        let dir = tempfile::Builder::new()
            .prefix("meridian-sandbox-")
            .tempdir()
            .map_err(SandboxError::TempDir)?;
        let head = 1_000;
        let mut nodes = Vec::new();
        for (i, (id, region, height)) in [
            ("node-eu", "eu", head),
            ("node-us", "us", head),
            ("node-ap-lagging", "ap", head - LAG_BLOCKS),
        ]
        .into_iter()
        .enumerate()
        {
            let node = MockEvmNode::try_start_on(options.addr(i as u16)?, height, CHAIN_ID).await?;
            nodes.push(SandboxNode { id, region, node });
        }
        let mut icon_nodes = Vec::new();
        for (i, (id, region)) in [("goloop-eu", "eu"), ("goloop-us", "us")]
            .into_iter()
            .enumerate()
        {
            let node = MockIconNode::try_start_on(options.addr(3 + i as u16)?, 5_000, ICON_NID)?;
            node.set_preps(sandbox_preps());
            icon_nodes.push(SandboxIconNode {
                id,
                region,
                node: std::sync::Arc::new(node),
            });
        }
        let chain = advance_heights(&nodes, &icon_nodes);

        let mut icon = NetworkSpec::new(ICON_NETWORK)
            .chain("icon")
            .chain_id(ICON_NID)
            .probe_interval_ms(500)
            .healthy_after(2)
            .unhealthy_after(2);
        for n in &icon_nodes {
            icon = icon.upstream(n.id, &n.node.url(), n.region);
        }
        let mut network = NetworkSpec::new(NETWORK)
            .chain_id(CHAIN_ID)
            .probe_interval_ms(500)
            .max_lag_blocks(10)
            .healthy_after(2)
            .unhealthy_after(2);
        for n in &nodes {
            network = network.upstream(n.id, &n.node.url(), n.region);
        }
        let toml = control_toml_at(
            options.addr(10)?,
            options.addr(11)?,
            &dir.path().join("control"),
            &[network, icon],
        );
        let config = ControlConfig::from_toml_str(&toml, Path::new("sandbox/control.toml"))?;
        let control_plane = ControlPlane::start(config).await?;
        let cp_url = format!("http://{}", control_plane.grpc_addr());

        let mut data_planes = Vec::new();
        for (i, region) in REGIONS.into_iter().enumerate() {
            let mut config = ProxyConfig::new(
                cp_url.clone(),
                region,
                dir.path().join(format!("proxy-{region}")),
            );
            config.dataplane_id = format!("sandbox-{region}");
            config.listen = options.addr(20 + i as u16)?;
            config.admin_listen = options.addr(30 + i as u16)?;
            config.network_listen = vec![(ICON_NETWORK.to_owned(), options.addr(40 + i as u16)?)];
            data_planes.push((region, DataPlane::start(config).await?));
        }
        let sandbox = Sandbox {
            nodes,
            icon_nodes,
            control_plane,
            data_planes,
            chain,
            _dir: dir,
        };
        sandbox.wait_serving().await?;
        Ok(sandbox)
    }

    /// Waits until a read of each network through every data plane gets a
    /// result.
    async fn wait_serving(&self) -> Result<(), SandboxError> {
        let client = RpcClient::new();
        for (region, dp) in &self.data_planes {
            for (network, url, body) in [
                (
                    NETWORK,
                    Self::url_of(dp),
                    request_body(1, "eth_blockNumber", "[]"),
                ),
                (
                    ICON_NETWORK,
                    Self::icon_url_of(dp),
                    r#"{"jsonrpc":"2.0","id":1,"method":"icx_getLastBlock"}"#.to_owned(),
                ),
            ] {
                let start = Instant::now();
                loop {
                    let answer = client.post(&url, body.clone()).await;
                    if matches!(&answer, Ok(r) if r.status == 200 && r.handled_by().is_some()) {
                        break;
                    }
                    if start.elapsed() > READY_TIMEOUT {
                        return Err(SandboxError::NotReady { region, network });
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        Ok(())
    }

    /// The ICON network at a data plane's own ICON listener, as iconsdk
    /// takes it.
    fn icon_url_of(dp: &DataPlane) -> String {
        dp.network_addr(ICON_NETWORK)
            .map(|a| format!("http://{a}/api/v3/{CHANNEL}"))
            .unwrap_or_default()
    }

    /// The iconsdk URL of the data plane of `region`.
    pub fn icon_url(&self, region: &str) -> Option<String> {
        self.data_planes
            .iter()
            .find(|(r, _)| *r == region)
            .map(|(_, dp)| Self::icon_url_of(dp))
    }

    /// The mock ICON nodes.
    pub fn icon_nodes(&self) -> &[SandboxIconNode] {
        &self.icon_nodes
    }

    fn url_of(dp: &DataPlane) -> String {
        format!("http://{}/{NETWORK}", dp.listen_addr())
    }

    /// The client URL of the data plane of `region`.
    pub fn data_plane_url(&self, region: &str) -> Option<String> {
        self.data_planes
            .iter()
            .find(|(r, _)| *r == region)
            .map(|(_, dp)| Self::url_of(dp))
    }

    /// The control plane's gRPC URL (what `meridianctl --control-plane` takes).
    pub fn control_plane_url(&self) -> String {
        format!("http://{}", self.control_plane.grpc_addr())
    }

    /// The mock nodes, e.g. to change their heights or inject faults.
    pub fn nodes(&self) -> &[SandboxNode] {
        &self.nodes
    }

    /// A `curl` command that works against the eu data plane.
    pub fn curl_line(&self) -> String {
        let url = self.data_plane_url("eu").unwrap_or_default();
        format!(
            "curl -si -H 'content-type: application/json' \
             --data '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_blockNumber\",\"params\":[]}}' {url}"
        )
    }

    /// A `curl` command for the ICON network through the eu data plane.
    pub fn icon_curl_line(&self) -> String {
        let url = self.icon_url("eu").unwrap_or_default();
        format!(
            "curl -si -H 'content-type: application/json' \
             --data '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"icx_getLastBlock\"}}' {url}"
        )
    }

    /// An iconsdk line for the ICON network through the eu data plane.
    pub fn iconsdk_line(&self) -> String {
        let url = self.icon_url("eu").unwrap_or_default();
        format!(
            "python3 -c 'from iconsdk.icon_service import IconService; \
             from iconsdk.providers.http_provider import HTTPProvider; \
             print(IconService(HTTPProvider(\"{url}\")).get_block(\"latest\")[\"height\"])'"
        )
    }

    /// The `meridianctl` arguments the banner prints (after the binary).
    pub fn meridianctl_args(&self) -> Vec<String> {
        vec![
            "--control-plane".to_owned(),
            self.control_plane_url(),
            "upstream".to_owned(),
            "list".to_owned(),
        ]
    }

    /// What the sandbox prints once it is up.
    pub fn describe(&self) -> String {
        let mut out = String::from(
            "Meridian sandbox is up.\n\nMock EVM nodes (network eth-local, chain id 1337):\n",
        );
        for n in &self.nodes {
            let note = if n.id.contains("lagging") {
                format!("  ({LAG_BLOCKS} blocks behind)")
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {:<16} region {:<3} {}{note}",
                n.id,
                n.region,
                n.node.url()
            );
        }
        let _ = writeln!(
            out,
            "\nMock goloop nodes (network {ICON_NETWORK}, nid {ICON_NID}):"
        );
        for n in &self.icon_nodes {
            let _ = writeln!(
                out,
                "  {:<16} region {:<3} {}",
                n.id,
                n.region,
                n.node.url()
            );
        }
        let _ = writeln!(
            out,
            "\nControl plane:\n  gRPC (snapshots + admin)  {}\n  HTTP                      http://{}/metrics",
            self.control_plane_url(),
            self.control_plane.http_addr()
        );
        out.push_str(
            "\nData planes (POST JSON-RPC to /<network>; ICON also at its own address):\n",
        );
        for (region, dp) in &self.data_planes {
            let _ = writeln!(
                out,
                "  {region}  {}  {}  admin http://{}/metrics",
                Self::url_of(dp),
                Self::icon_url_of(dp),
                dp.admin_addr()
            );
        }
        let _ = writeln!(
            out,
            "\nTry:\n  {}\n  {}\n  {}   (pip install iconsdk)\n  cargo run -p meridian-control-plane --bin meridianctl -- {}\n\nLogs: the planes' warnings and errors, on stderr (--log-filter info for everything).\nCtrl-C stops everything.",
            self.curl_line(),
            self.icon_curl_line(),
            self.iconsdk_line(),
            self.meridianctl_args().join(" "),
        );
        out
    }

    /// Stops the data planes, then the control plane, then the nodes.
    pub async fn shutdown(self) {
        for (_, dp) in self.data_planes {
            dp.shutdown().await;
        }
        self.control_plane.shutdown().await;
        self.chain.abort();
        for n in &self.nodes {
            n.node.kill();
        }
        for n in &self.icon_nodes {
            n.node.kill();
        }
    }
}

/// Moves every node's head one block per second, so heights look alive
/// (the lagging node keeps its distance).
fn advance_heights(nodes: &[SandboxNode], icon: &[SandboxIconNode]) -> JoinHandle<()> {
    let handles: Vec<_> = nodes.iter().map(|n| n.node.height_handle()).collect();
    let icon: Vec<_> = icon.iter().map(|n| n.node.clone()).collect();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            for h in &handles {
                h.advance(1);
            }
            for n in &icon {
                n.advance(1);
            }
        }
    })
}

/// The P-Reps the sandbox's goloop nodes list (`getPReps`).
fn sandbox_preps() -> Vec<PRep> {
    ["eu", "us"]
        .into_iter()
        .enumerate()
        .map(|(i, region)| PRep {
            address: format!("hx{:040x}", i + 1),
            name: format!("sandbox-prep-{region}"),
            grade: "0x0".to_owned(),
            status: "0x0".to_owned(),
            p2p_endpoint: format!("127.0.0.1:{}", 7100 + i),
            node_address: format!("hx{:040x}", i + 101),
        })
        .collect()
}

/// Starts the sandbox, prints how to use it, and runs until Ctrl-C (or
/// SIGTERM), then shuts everything down.
pub async fn run(options: SandboxOptions) -> Result<(), SandboxError> {
    let sandbox = Sandbox::start(options).await?;
    println!("{}", sandbox.describe());
    let stopped = wait_for_stop().await;
    println!("stopping the sandbox…");
    sandbox.shutdown().await;
    stopped
}

async fn wait_for_stop() -> Result<(), SandboxError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(SandboxError::Signal)?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map_err(SandboxError::Signal),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(SandboxError::Signal)
    }
}
