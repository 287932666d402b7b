//! A real EVM node for tests: ganache from the npm registry.
//!
//! [`ensure_installed`] installs `ganache@7` with npm into
//! `<target>/ganache-cache/` the first time any test needs it, so
//! `cargo test --workspace` works on a fresh machine that has Node.js.
//! Test binaries run in parallel processes, so the install is guarded by
//! [`crate::install`]'s lock file and made atomic by installing into a
//! temporary directory and renaming it into place: a half-finished install
//! is never mistaken for a good one.
//!
//! A missing `node` or `npm` is an error with a clear message, never a skip:
//! CI installs both, and a silently skipped test would prove nothing.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use meridian_test_kit::rpc::RpcClient;

pub use crate::install::target_dir;
use crate::install::{Lock, take_lock};

/// The npm package spec installed.
pub const GANACHE_PACKAGE: &str = "ganache@7";
/// The chain id ganache is started with.
pub const GANACHE_CHAIN_ID: u64 = 1337;

/// Longest an install may take (npm on a cold cache, slow network).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest ganache may take to answer its first `eth_blockNumber`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Why ganache could not be installed or started.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GanacheError {
    #[error(
        "`{0}` was not found on PATH: the ganache test needs Node.js and npm \
         (CI installs them via .ci/run; locally e.g. `apt-get install nodejs npm`)"
    )]
    MissingTool(&'static str),
    #[error("`npm install {GANACHE_PACKAGE}` into {dir} failed: {detail}")]
    Install { dir: PathBuf, detail: String },
    #[error("{0}")]
    Io(String),
    #[error("ganache did not become ready: {0}")]
    NotReady(String),
}

fn io(what: &str, path: &Path, e: &std::io::Error) -> GanacheError {
    GanacheError::Io(format!("{what} {}: {e}", path.display()))
}

/// `<target>/ganache-cache`
pub fn cache_dir() -> PathBuf {
    target_dir().join("ganache-cache")
}

/// Where a complete install lives.
fn install_dir(cache: &Path) -> PathBuf {
    cache.join("ganache")
}

fn cli_path(install: &Path) -> PathBuf {
    install.join("node_modules/ganache/dist/node/cli.js")
}

/// Installs ganache if missing and returns the path of its `cli.js`.
/// Once per process; across processes serialised by a lock file.
pub fn ensure_installed() -> Result<PathBuf, GanacheError> {
    static INSTALLED: OnceLock<Result<PathBuf, GanacheError>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            require_tool("node")?;
            install_into(&cache_dir())
        })
        .clone()
}

fn require_tool(tool: &'static str) -> Result<(), GanacheError> {
    match Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => Ok(()),
        _ => Err(GanacheError::MissingTool(tool)),
    }
}

fn install_into(cache: &Path) -> Result<PathBuf, GanacheError> {
    let install = install_dir(cache);
    let cli = cli_path(&install);
    if cli.is_file() {
        return Ok(cli);
    }
    fs::create_dir_all(cache).map_err(|e| io("creating", cache, &e))?;
    let lock = cache.join("install.lock");
    let taken = take_lock(&lock, || cli.is_file(), INSTALL_TIMEOUT).map_err(|detail| {
        GanacheError::Install {
            dir: install.clone(),
            detail,
        }
    })?;
    if taken == Lock::Done {
        return Ok(cli);
    }
    let result = if cli.is_file() {
        Ok(cli.clone())
    } else {
        npm_install(cache, &install).map(|()| cli)
    };
    let _ = fs::remove_file(&lock);
    result
}

/// Installs into a fresh temporary directory, then renames it into place.
fn npm_install(cache: &Path, install: &Path) -> Result<(), GanacheError> {
    require_tool("npm")?;
    let tmp = cache.join(format!("tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(|e| io("creating", &tmp, &e))?;
    eprintln!(
        "installing {GANACHE_PACKAGE} with npm into {} (first run only)",
        install.display()
    );
    let output = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(&tmp)
        .arg(GANACHE_PACKAGE)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| GanacheError::Install {
            dir: install.to_owned(),
            detail: format!("cannot run npm: {e}"),
        })?;
    if !output.status.success() || !cli_path(&tmp).is_file() {
        let _ = fs::remove_dir_all(&tmp);
        return Err(GanacheError::Install {
            dir: install.to_owned(),
            detail: format!(
                "npm exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    // A leftover incomplete dir (no cli.js) would block the rename.
    let _ = fs::remove_dir_all(install);
    fs::rename(&tmp, install).map_err(|e| io("renaming into", install, &e))
}

/// A running ganache; killed when dropped.
#[derive(Debug)]
pub struct Ganache {
    child: Child,
    addr: SocketAddr,
    _log_dir: tempfile::TempDir,
}

impl Ganache {
    /// Installs ganache if needed, starts it on a free 127.0.0.1 port with
    /// chain id [`GANACHE_CHAIN_ID`], and waits until it answers.
    pub async fn start() -> Result<Ganache, GanacheError> {
        let cli = tokio::task::spawn_blocking(ensure_installed)
            .await
            .map_err(|e| GanacheError::Io(format!("install task failed: {e}")))??;
        // A free port can be taken by someone else before ganache binds it;
        // a second try with a new port covers that race.
        let mut last = None;
        for _ in 0..3 {
            match Self::spawn(&cli).await {
                Ok(g) => return Ok(g),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| GanacheError::NotReady("no attempt made".into())))
    }

    async fn spawn(cli: &Path) -> Result<Ganache, GanacheError> {
        let port =
            free_port().map_err(|e| GanacheError::Io(format!("finding a free port: {e}")))?;
        let log_dir = tempfile::tempdir().map_err(|e| GanacheError::Io(e.to_string()))?;
        let log_path = log_dir.path().join("ganache.log");
        let log = fs::File::create(&log_path).map_err(|e| io("creating", &log_path, &e))?;
        let log_err = log.try_clone().map_err(|e| io("cloning", &log_path, &e))?;
        let child = Command::new("node")
            .arg(cli)
            .args(["--server.host", "127.0.0.1", "--server.port"])
            .arg(port.to_string())
            .args(["--chain.chainId", &GANACHE_CHAIN_ID.to_string()])
            .args(["--wallet.deterministic", "--logging.quiet"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| GanacheError::Io(format!("spawning node {}: {e}", cli.display())))?;
        let mut ganache = Ganache {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _log_dir: log_dir,
        };
        let client = RpcClient::new();
        let start = Instant::now();
        loop {
            if let Ok(r) = client.call(&ganache.url(), "eth_blockNumber").await
                && r.status == 200
                && serde_json::from_slice::<serde_json::Value>(&r.body)
                    .is_ok_and(|v| v["result"].is_string())
            {
                return Ok(ganache);
            }
            if let Ok(Some(status)) = ganache.child.try_wait() {
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                return Err(GanacheError::NotReady(format!(
                    "exited with {status}: {log}"
                )));
            }
            if start.elapsed() > READY_TIMEOUT {
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                return Err(GanacheError::NotReady(format!(
                    "no answer on {} within {READY_TIMEOUT:?}: {log}",
                    ganache.addr
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address ganache listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Ganache {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on loopback right now (the usual small race with whoever
/// binds it next is acceptable in tests).
pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_lives_under_target() {
        assert!(cache_dir().ends_with("ganache-cache"));
        assert!(
            cache_dir().parent().is_some_and(|p| p.ends_with("target"))
                || std::env::var_os("CARGO_TARGET_DIR").is_some()
        );
    }

    #[tokio::test]
    async fn ganache_installs_starts_and_answers() {
        let ganache = Ganache::start()
            .await
            .unwrap_or_else(|e| panic!("ganache is required for this test: {e}"));
        let client = RpcClient::new();
        let r = client.call(&ganache.url(), "eth_chainId").await.unwrap();
        assert_eq!(r.json()["result"], format!("0x{GANACHE_CHAIN_ID:x}"));
    }
}
