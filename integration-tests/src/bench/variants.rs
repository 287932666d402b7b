//! The variants measured side by side: direct, nginx and Meridian.
//!
//! Each one is started fresh for each repetition, pinned to the proxy CPUs
//! next to the shared backend, and answers `POST <url>` with the backend's
//! answer once [`start`] returns. Dropping a [`RunningVariant`] stops every
//! process it started.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::backend;
use super::error::BenchError;
use super::process::{Managed, Spawn, free_addr};
use super::procfs;
use meridian_test_kit::poll::try_eventually;
use meridian_test_kit::rpc::RpcClient;

/// The network id Meridian serves the backend under; every variant is
/// addressed at this path so that the requests are byte-identical.
pub const NETWORK: &str = "bench";

/// How long a variant may take to serve its first request.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One way of reaching the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// The load generator talks to the backend itself.
    Direct,
    /// Through nginx (1 worker, upstream keepalive).
    Nginx,
    /// Through Meridian's data plane (control plane + one data plane).
    Meridian,
    /// nginx answering every request itself (`return 200` of a fixed
    /// body): the floor of one HTTP exchange, beside Meridian's cache hits.
    #[serde(rename = "nginx-static")]
    NginxStatic,
    /// Meridian with its response cache on.
    #[serde(rename = "meridian-cached")]
    MeridianCached,
}

impl Variant {
    /// All variants in their base order.
    pub const ALL: [Variant; 3] = [Variant::Direct, Variant::Nginx, Variant::Meridian];

    /// Lower-case name, as in the result file.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Direct => "direct",
            Variant::Nginx => "nginx",
            Variant::Meridian => "meridian",
            Variant::NginxStatic => "nginx-static",
            Variant::MeridianCached => "meridian-cached",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the programs are.
#[derive(Debug, Clone)]
pub struct Programs {
    /// The `meridian-bench` executable (runs the backend).
    pub bench: PathBuf,
    /// `meridian-control`.
    pub control: PathBuf,
    /// `meridian-proxy`.
    pub proxy: PathBuf,
    /// nginx.
    pub nginx: PathBuf,
}

/// What every variant shares.
#[derive(Debug, Clone)]
pub struct VariantContext {
    /// The programs.
    pub programs: Programs,
    /// The shared backend's address.
    pub backend: std::net::SocketAddr,
    /// CPUs for proxies (taskset list), `None` unpinned.
    pub proxy_cpus: Option<String>,
    /// Data-plane worker threads.
    pub worker_threads: usize,
    /// Directory for configs, state and logs of this run.
    pub work_dir: PathBuf,
}

/// The shared backend process.
#[derive(Debug)]
pub struct Backend {
    /// The process.
    pub process: Managed,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
}

impl Backend {
    /// Starts `meridian-bench backend` pinned to `cpus` and waits until it
    /// listens.
    pub fn start(bench: &Path, cpus: Option<&str>, log_dir: &Path) -> Result<Backend, BenchError> {
        let mut process = Spawn::new("backend", bench)
            .pinned(cpus)
            .args(["backend", "--port", "0"])
            .start(log_dir)?;
        let line = process.wait_for_line(backend::READY_PREFIX, START_TIMEOUT)?;
        let addr = line
            .parse()
            .map_err(|e| process.failure(format!("printed an unparsable address {line:?}: {e}")))?;
        Ok(Backend { process, addr })
    }
}

/// A started variant.
#[derive(Debug)]
pub struct RunningVariant {
    /// Which one.
    pub variant: Variant,
    /// The URL clients POST to.
    pub url: String,
    /// Processes whose CPU and memory count as the proxy's (none for direct).
    pub proxy_pids: Vec<u32>,
    /// Meridian's admin listener (`http://host:port`); `None` for the others.
    pub admin: Option<String>,
    /// Processes started for this variant; stopped on drop (proxy first).
    processes: Vec<Managed>,
}

impl RunningVariant {
    /// The listener's `host:port`.
    pub fn authority(&self) -> &str {
        let rest = self.url.trim_start_matches("http://");
        rest.split('/').next().unwrap_or(rest)
    }

    /// Errors if any process of the variant has died.
    pub fn check_alive(&mut self) -> Result<(), BenchError> {
        self.processes.iter_mut().try_for_each(Managed::check_alive)
    }

    /// Total RSS of the proxy processes in KiB; `None` for direct.
    pub fn proxy_rss_kib(&self) -> Result<Option<u64>, BenchError> {
        if self.proxy_pids.is_empty() {
            return Ok(None);
        }
        let mut total = 0;
        for &pid in &self.proxy_pids {
            total += procfs::rss_kib(pid)?;
        }
        Ok(Some(total))
    }

    /// Total CPU ticks of the proxy processes; `None` for direct.
    pub fn proxy_cpu_ticks(&self) -> Result<Option<u64>, BenchError> {
        if self.proxy_pids.is_empty() {
            return Ok(None);
        }
        let mut total = 0;
        for &pid in &self.proxy_pids {
            total += procfs::cpu_ticks(pid)?;
        }
        Ok(Some(total))
    }
}

impl Drop for RunningVariant {
    fn drop(&mut self) {
        // The proxy goes before the control plane, so it does not spend its
        // last moments reconnecting.
        while let Some(p) = self.processes.pop() {
            p.stop();
        }
    }
}

/// Starts `variant` with its files under `<work dir>/<name>` and waits
/// until it serves.
pub async fn start(
    variant: Variant,
    ctx: &VariantContext,
    name: &str,
) -> Result<RunningVariant, BenchError> {
    let dir = ctx.work_dir.join(name);
    std::fs::create_dir_all(&dir).map_err(BenchError::io(format!("create {}", dir.display())))?;
    let mut running = match variant {
        Variant::Direct => RunningVariant {
            variant,
            url: format!("http://{}/{NETWORK}", ctx.backend),
            proxy_pids: Vec::new(),
            admin: None,
            processes: Vec::new(),
        },
        Variant::Nginx => start_nginx(ctx, &dir)?,
        Variant::Meridian => start_meridian(ctx, &dir).await?,
        Variant::NginxStatic => start_nginx_with(ctx, &dir, variant, |listen| {
            nginx_static_conf(&dir, listen, CHAIN_ID_ANSWER, running_as_root())
        })?,
        Variant::MeridianCached => {
            start_meridian_with(ctx, &dir, variant, CACHED_MERIDIAN_BYTES).await?
        }
    };
    wait_serving(&mut running).await?;
    if matches!(variant, Variant::Nginx | Variant::NginxStatic) {
        // The worker is forked after the master starts; count it (and make
        // sure it goes down with the master).
        if let Some(master) = running.processes.first_mut() {
            for worker in procfs::children(master.pid()) {
                master.adopt(worker);
                running.proxy_pids.push(worker);
            }
        }
    }
    Ok(running)
}

/// What nginx-static answers every request with: the backend's answer to
/// [`super::measure::CHAIN_ID_BODY`], byte for byte.
pub const CHAIN_ID_ANSWER: &str = r#"{"jsonrpc":"2.0","id":1,"result":"0x1"}"#;

/// The cache of the cached Meridian variant (the default bound).
const CACHED_MERIDIAN_BYTES: u64 = 256 * 1024 * 1024;

/// Polls until one call through the variant gets the backend's answer
/// (`eth_chainId` from nginx-static, `eth_blockNumber` from the others).
async fn wait_serving(running: &mut RunningVariant) -> Result<(), BenchError> {
    let client = RpcClient::new();
    let url = running.url.clone();
    let (method, expected) = match running.variant {
        Variant::NginxStatic => ("eth_chainId", backend::CHAIN_ID),
        _ => ("eth_blockNumber", backend::HEAD_HEIGHT),
    };
    let served = try_eventually(START_TIMEOUT, || {
        let client = client.clone();
        let url = url.clone();
        async move {
            match client.call(&url, method).await {
                Ok(resp) => resp.status == 200 && resp.json()["result"] == expected,
                Err(_) => false,
            }
        }
    })
    .await;
    running.check_alive()?;
    match (served, running.processes.last()) {
        (Ok(_), _) => Ok(()),
        (Err(()), Some(last)) => Err(last.failure(format!(
            "{} did not serve {method} at {url} within {START_TIMEOUT:?}",
            running.variant
        ))),
        (Err(()), None) => Err(BenchError::measure(
            running.variant.to_string(),
            format!("no answer at {url} within {START_TIMEOUT:?}"),
        )),
    }
}

/// The nginx configuration: one worker, an upstream block with keepalive,
/// HTTP/1.1 to the upstream, no access log; everything under `dir`.
pub fn nginx_conf(
    dir: &Path,
    listen: std::net::SocketAddr,
    backend: std::net::SocketAddr,
    as_root: bool,
) -> String {
    let upstream = format!(
        r#"    upstream backend {{
        server {backend};
        keepalive 64;
        keepalive_requests 100000000;
    }}
"#
    );
    let location = r#"            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
"#;
    nginx_conf_with(dir, listen, as_root, &upstream, location)
}

/// The floor of one HTTP exchange: nginx answering every request itself
/// with `body` (`return 200`), the same settings otherwise.
pub fn nginx_static_conf(
    dir: &Path,
    listen: std::net::SocketAddr,
    body: &str,
    as_root: bool,
) -> String {
    let location =
        format!("            default_type application/json;\n            return 200 '{body}';\n");
    nginx_conf_with(dir, listen, as_root, "", &location)
}

fn nginx_conf_with(
    dir: &Path,
    listen: std::net::SocketAddr,
    as_root: bool,
    upstream: &str,
    location: &str,
) -> String {
    let d = dir.display();
    // nginx drops privileges to `nobody` when started as root unless told
    // otherwise; stay the user that started it.
    let user = if as_root { "user root;\n" } else { "" };
    format!(
        r#"{user}worker_processes 1;
worker_rlimit_nofile 20000;
pid {d}/nginx.pid;
error_log {d}/error.log warn;

events {{
    worker_connections 16384;
}}

http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 100000000;

{upstream}
    server {{
        listen {listen} backlog=4096;
        location / {{
{location}        }}
    }}
}}
"#
    )
}

fn start_nginx(ctx: &VariantContext, dir: &Path) -> Result<RunningVariant, BenchError> {
    start_nginx_with(ctx, dir, Variant::Nginx, |listen| {
        nginx_conf(dir, listen, ctx.backend, running_as_root())
    })
}

/// Starts nginx with the configuration `conf` renders for its listener;
/// the result is labelled `variant`.
pub fn start_nginx_with(
    ctx: &VariantContext,
    dir: &Path,
    variant: Variant,
    conf: impl FnOnce(std::net::SocketAddr) -> String,
) -> Result<RunningVariant, BenchError> {
    let listen = free_addr()?;
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf(listen))
        .map_err(BenchError::io(format!("write {}", path.display())))?;
    let process = Spawn::new("nginx", &ctx.programs.nginx)
        .pinned(ctx.proxy_cpus.as_deref())
        .args([
            "-p".as_ref(),
            dir.as_os_str(),
            "-c".as_ref(),
            path.as_os_str(),
        ])
        .args(["-e".as_ref(), dir.join("error.log").as_os_str()])
        .args(["-g", "daemon off;"])
        .start(dir)?;
    Ok(RunningVariant {
        variant,
        url: format!("http://{listen}/{NETWORK}"),
        proxy_pids: vec![process.pid()],
        admin: None,
        processes: vec![process],
    })
}

/// The data plane's log filter in the bench: no access line per request,
/// as nginx runs with `access_log off`, so both proxies do the same work.
/// Every other line (startup, snapshots, warnings) stays on.
pub const MERIDIAN_LOG_FILTER: &str = "info,meridian::access=off";

/// `control.toml` for the bench: one network `bench` with the backend as its
/// only upstream, healthy after one probe.
pub fn control_toml(
    dir: &Path,
    grpc: std::net::SocketAddr,
    http: std::net::SocketAddr,
    backend: std::net::SocketAddr,
) -> String {
    format!(
        r#"[server]
grpc_listen = "{grpc}"
http_listen = "{http}"
data_dir = "{data}"

[[networks]]
id = "{NETWORK}"
chain = "evm"
chain_id = 1
probe_interval_ms = 1000
healthy_after = 1

[[networks.upstreams]]
id = "backend"
url = "http://{backend}"
region = "bench"
"#,
        data = dir.join("control").display(),
    )
}

/// Meridian with its cache off: the proxy path itself is measured (nginx
/// caches nothing either), every request goes upstream.
async fn start_meridian(ctx: &VariantContext, dir: &Path) -> Result<RunningVariant, BenchError> {
    start_meridian_with(ctx, dir, Variant::Meridian, 0).await
}

/// Meridian with a response cache of `cache_max_bytes` (0: none),
/// labelled `variant`; returns once the proxy is ready.
pub async fn start_meridian_with(
    ctx: &VariantContext,
    dir: &Path,
    variant: Variant,
    cache_max_bytes: u64,
) -> Result<RunningVariant, BenchError> {
    let grpc = free_addr()?;
    let http = free_addr()?;
    let config = dir.join("control.toml");
    std::fs::write(&config, control_toml(dir, grpc, http, ctx.backend))
        .map_err(BenchError::io(format!("write {}", config.display())))?;
    let control = Spawn::new("meridian-control", &ctx.programs.control)
        .pinned(ctx.proxy_cpus.as_deref())
        .args(["--config".as_ref(), config.as_os_str()])
        .start(dir)?;
    let listen = free_addr()?;
    let admin = free_addr()?;
    let proxy = Spawn::new("meridian-proxy", &ctx.programs.proxy)
        .pinned(ctx.proxy_cpus.as_deref())
        .args(["--control-plane".to_owned(), format!("http://{grpc}")])
        .args(["--region", "bench", "--id", "bench-proxy"])
        .args(["--listen".to_owned(), listen.to_string()])
        .args(["--admin-listen".to_owned(), admin.to_string()])
        .args(["--state-dir".as_ref(), dir.join("proxy").as_os_str()])
        .args([
            "--worker-threads".to_owned(),
            ctx.worker_threads.to_string(),
        ])
        .args(["--cache-max-bytes".to_owned(), cache_max_bytes.to_string()])
        .env("MERIDIAN_LOG", MERIDIAN_LOG_FILTER)
        .start(dir)?;
    let mut running = RunningVariant {
        variant,
        url: format!("http://{listen}/{NETWORK}"),
        proxy_pids: vec![proxy.pid()],
        admin: Some(format!("http://{admin}")),
        processes: vec![control, proxy],
    };
    // /ready first: a clearer failure than a refused request when the
    // snapshot never arrives.
    let client = RpcClient::new();
    let ready_url = format!("http://{admin}/ready");
    let ready = try_eventually(START_TIMEOUT, || {
        let client = client.clone();
        let url = ready_url.clone();
        async move { matches!(client.get(&url).await, Ok(r) if r.status == 200) }
    })
    .await;
    running.check_alive()?;
    if ready.is_err() {
        let proxy = running
            .processes
            .last()
            .ok_or_else(|| BenchError::measure("meridian", "no proxy process"))?;
        return Err(proxy.failure(format!("{ready_url} not 200 within {START_TIMEOUT:?}")));
    }
    Ok(running)
}

/// Whether this process runs as root (uid 0), read from `/proc/self/status`.
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_conf_has_the_fair_settings() {
        let conf = nginx_conf(
            Path::new("/tmp/x"),
            "127.0.0.1:8080".parse().expect("addr"),
            "127.0.0.1:9000".parse().expect("addr"),
            true,
        );
        for needle in [
            "worker_processes 1;",
            "keepalive 64;",
            "proxy_http_version 1.1;",
            "proxy_set_header Connection \"\";",
            "access_log off;",
            "server 127.0.0.1:9000;",
            "listen 127.0.0.1:8080",
            "user root;",
        ] {
            assert!(conf.contains(needle), "missing {needle} in\n{conf}");
        }
    }

    #[test]
    fn control_toml_parses_with_the_control_plane_config() {
        let dir = Path::new("/tmp/bench-x");
        let text = control_toml(
            dir,
            "127.0.0.1:1".parse().expect("addr"),
            "127.0.0.1:2".parse().expect("addr"),
            "127.0.0.1:3".parse().expect("addr"),
        );
        let config = meridian_control_plane::config::ControlConfig::from_toml_str(
            &text,
            &dir.join("control.toml"),
        )
        .expect("valid control.toml");
        assert_eq!(config.networks.len(), 1);
        assert_eq!(config.networks[0].healthy_after, 1);
    }
}
