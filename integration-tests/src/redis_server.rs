//! A real Redis for tests: Debian's `redis-server`, one instance per test
//! on a free loopback port, with persistence off, stopped on drop.
//!
//! A missing binary is an error with a clear message, never a skip: CI
//! installs `redis-server` (.ci/run), and a skipped test would prove
//! nothing. [`RedisServer::kill`] and [`RedisServer::restart`] let a test
//! take Redis away mid-run and bring it back on the same port.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::ganache::free_port;
use meridian_test_kit::poll::eventually;

/// Longest a fresh server may take to answer `PING`.
const READY: Duration = Duration::from_secs(20);

/// One running `redis-server`.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file());
    on_path
        .or_else(|| {
            let sbin = PathBuf::from("/usr/bin/redis-server");
            sbin.is_file().then_some(sbin)
        })
        .unwrap_or_else(|| {
            panic!(
                "`redis-server` was not found on PATH: the shared-cache tests need it \
                 (CI installs it via .ci/run; locally `apt-get install redis-server`)"
            )
        })
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers.
    pub async fn start() -> RedisServer {
        let port = free_port().unwrap_or_else(|e| panic!("a free port for redis-server: {e}"));
        let dir =
            tempfile::tempdir().unwrap_or_else(|e| panic!("a directory for redis-server: {e}"));
        let mut server = RedisServer {
            child: None,
            port,
            dir,
        };
        server.restart().await;
        server
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Kills the server at once (SIGKILL: no goodbye to its clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port, empty, and waits until
    /// it answers.
    pub async fn restart(&mut self) {
        self.kill();
        let child = Command::new(binary())
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server starts: {e}"));
        self.child = Some(child);
        let url = self.url();
        eventually("redis-server to answer PING", READY, || async {
            matches!(command(&url, &["PING"]).await, Ok(redis::Value::SimpleString(s)) if s == "PONG")
        })
        .await;
    }

    /// Runs one command on this server.
    pub async fn command(&self, args: &[&str]) -> redis::RedisResult<redis::Value> {
        command(&self.url(), args).await
    }

    async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap_or_else(|e| panic!("a redis url: {e}"))
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("a connection to the test redis: {e}"))
    }

    /// The keys matching `pattern`.
    pub async fn keys(&self, pattern: &str) -> Vec<Vec<u8>> {
        let mut conn = self.conn().await;
        redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("KEYS: {e}"))
    }

    /// Sets `key` (raw bytes) to `value`.
    pub async fn set(&self, key: &[u8], value: &[u8]) {
        let mut conn = self.conn().await;
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query_async::<()>(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("SET: {e}"));
    }

    /// The value of `key` (raw bytes), if any.
    pub async fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mut conn = self.conn().await;
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("GET: {e}"))
    }
}

async fn command(url: &str, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(&mut conn).await
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
