//! The proxy figures: throughput (wrk), fixed-rate latency (oha), CPU per
//! request (/proc) and memory with many open client connections.
//!
//! The load generators run pinned to the load CPUs; the proxy's CPU time is
//! read from `/proc/<pid>/stat` just before and after the wrk run, so it
//! covers exactly the requests wrk counted (an idle proxy spends nothing).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::error::BenchError;

/// The request every load generator sends.
pub const BLOCK_NUMBER_BODY: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#;

/// The request of the cache-hit workload: static, so Meridian answers it
/// from its cache after the first.
pub const CHAIN_ID_BODY: &str = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;

/// What one wrk run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Throughput {
    /// Requests completed.
    pub requests: u64,
    /// Requests per second wrk reports.
    pub requests_per_sec: f64,
    /// Non-2xx answers plus socket errors.
    pub errors: u64,
    /// Of `errors`, the answers with a status other than 2xx or 3xx (the
    /// rest are socket errors: connect, read, write, timeout).
    #[serde(default)]
    pub non_2xx: u64,
}

/// How to run wrk.
#[derive(Debug, Clone)]
pub struct WrkRun<'a> {
    /// The wrk binary.
    pub wrk: &'a Path,
    /// CPUs for `taskset -c`, `None` unpinned.
    pub cpus: Option<&'a str>,
    /// Open connections.
    pub connections: usize,
    /// Run time.
    pub duration: Duration,
    /// Where the Lua script goes.
    pub work_dir: &'a Path,
    /// The Lua script: what each request is ([`post_script`],
    /// [`rotate_script`]).
    pub script: &'a str,
}

/// The wrk script POSTing `body` as JSON on every request.
pub fn post_script(body: &str) -> String {
    format!(
        "wrk.method = \"POST\"\nwrk.body = '{body}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
    )
}

/// The wrk script POSTing `bodies` in turn, one per request (wrk's one
/// thread keeps one counter for all its connections, so the mix is exact).
pub fn rotate_script(bodies: &[String]) -> String {
    let mut lua = String::from("local bodies = {\n");
    for body in bodies {
        lua.push_str("  '");
        lua.push_str(body);
        lua.push_str("',\n");
    }
    lua.push_str(
        "}\nlocal headers = { [\"Content-Type\"] = \"application/json\" }\n\
         local i = 0\n\
         request = function()\n  i = i % #bodies + 1\n  return wrk.format(\"POST\", nil, headers, bodies[i])\nend\n",
    );
    lua
}

/// Runs `wrk -t1 -c<connections> -d<duration>` against `url`.
pub fn wrk(run: &WrkRun<'_>, url: &str) -> Result<Throughput, BenchError> {
    let script = run.work_dir.join("post.lua");
    std::fs::write(&script, run.script)
        .map_err(BenchError::io(format!("write {}", script.display())))?;
    let secs = run.duration.as_secs().max(1);
    let mut cmd = pinned_command(run.wrk, run.cpus);
    cmd.arg("-t1")
        .arg(format!("-c{}", run.connections))
        .arg(format!("-d{secs}s"))
        .arg("-s")
        .arg(&script)
        .arg(url);
    let output = cmd
        .output()
        .map_err(|e| BenchError::measure("wrk", format!("cannot run {cmd:?}: {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(BenchError::measure(
            "wrk",
            format!(
                "{cmd:?} failed ({}): {stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
        ));
    }
    parse_wrk(&stdout).ok_or_else(|| {
        BenchError::measure(
            "wrk",
            format!("cannot parse the output of {cmd:?}:\n{stdout}"),
        )
    })
}

/// Parses wrk's text output.
pub fn parse_wrk(out: &str) -> Option<Throughput> {
    let mut requests = None;
    let mut rps = None;
    let mut errors = 0;
    let mut non_2xx = 0;
    for line in out.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            rps = rest.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = rest.trim().parse::<u64>().ok()?;
            errors += non_2xx;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for part in rest.split(',') {
                errors += part.split_whitespace().nth(1)?.parse::<u64>().ok()?;
            }
        } else if line.contains(" requests in ") {
            requests = line.split_whitespace().next()?.parse().ok();
        }
    }
    Some(Throughput {
        requests: requests?,
        requests_per_sec: rps?,
        errors,
        non_2xx,
    })
}

/// Latency at one fixed rate (oha with latency correction), in ms.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    /// Requests per second asked for.
    pub rate: u32,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Rate actually achieved.
    pub achieved_rps: f64,
    /// Share of requests answered 2xx (0..1).
    pub success_rate: f64,
}

/// Runs `oha --latency-correction -q <rate> -z <duration>` against `url`.
pub fn oha(
    oha: &Path,
    cpus: Option<&str>,
    url: &str,
    rate: u32,
    duration: Duration,
) -> Result<Latency, BenchError> {
    let mut cmd = pinned_command(oha, cpus);
    cmd.args([
        "--no-tui",
        "--latency-correction",
        "--output-format",
        "json",
    ])
    .arg("-q")
    .arg(rate.to_string())
    .arg("-z")
    .arg(format!("{}ms", duration.as_millis().max(1)))
    .args(["-c", "64", "-m", "POST", "-d", BLOCK_NUMBER_BODY])
    .args(["-H", "content-type: application/json"])
    .arg(url);
    let output = cmd
        .output()
        .map_err(|e| BenchError::measure("oha", format!("cannot run {cmd:?}: {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(BenchError::measure(
            "oha",
            format!(
                "{cmd:?} failed ({}): {stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
        ));
    }
    parse_oha(&stdout, rate).map_err(|problem| {
        BenchError::measure("oha", format!("{problem}; output of {cmd:?}:\n{stdout}"))
    })
}

/// Parses oha's JSON output (`latencyPercentiles` are in seconds).
pub fn parse_oha(json: &str, rate: u32) -> Result<Latency, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let pct = |key: &str| {
        v["latencyPercentiles"][key]
            .as_f64()
            .map(|s| s * 1000.0)
            .ok_or_else(|| format!("no latencyPercentiles.{key}"))
    };
    Ok(Latency {
        rate,
        p50_ms: pct("p50")?,
        p99_ms: pct("p99")?,
        p999_ms: pct("p99.9")?,
        achieved_rps: v["summary"]["requestsPerSec"]
            .as_f64()
            .ok_or("no summary.requestsPerSec")?,
        success_rate: v["summary"]["successRate"]
            .as_f64()
            .ok_or("no summary.successRate")?,
    })
}

fn pinned_command(program: &Path, cpus: Option<&str>) -> Command {
    match cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpus).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Open client connections that each completed one keep-alive request;
/// closed when dropped.
#[derive(Debug)]
pub struct HeldConnections {
    streams: Vec<TcpStream>,
}

impl HeldConnections {
    /// How many are open.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether none are open.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

/// How many connections are being opened at once: below the listen backlog
/// of every variant, so no SYN is dropped and retried a second later.
const OPEN_CONCURRENCY: usize = 256;

/// Opens `n` connections to `addr`, sends one keep-alive `eth_blockNumber`
/// POST to `path` on each and reads the answer, and keeps them all open.
pub async fn hold_connections(
    addr: SocketAddr,
    path: &str,
    n: usize,
) -> Result<HeldConnections, BenchError> {
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{BLOCK_NUMBER_BODY}",
        BLOCK_NUMBER_BODY.len()
    );
    let request = std::sync::Arc::new(request);
    let gate = std::sync::Arc::new(Semaphore::new(OPEN_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let request = request.clone();
        let gate = gate.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            let exchange = async {
                let mut stream = TcpStream::connect(addr)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                stream
                    .write_all(request.as_bytes())
                    .await
                    .map_err(|e| format!("write: {e}"))?;
                read_one_response(&mut stream).await?;
                Ok::<_, String>(stream)
            };
            tokio::time::timeout(Duration::from_secs(30), exchange)
                .await
                .map_err(|_| "no answer within 30 s".to_owned())?
        });
    }
    let mut streams = Vec::with_capacity(n);
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(stream)) => streams.push(stream),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    match first_error {
        None => Ok(HeldConnections { streams }),
        Some(e) => Err(BenchError::measure(
            "open keep-alive connections",
            format!("{} of {n} to {addr} failed, first: {e}", n - streams.len()),
        )),
    }
}

/// Reads one HTTP/1.1 response with a `content-length` body; errors unless
/// it is a 200.
async fn read_one_response(stream: &mut TcpStream) -> Result<(), String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("closed before a full answer".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        if !head.starts_with("http/1.1 200") {
            return Err(format!(
                "answer was not 200: {}",
                head.lines().next().unwrap_or("")
            ));
        }
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or("answer without content-length")?;
        if buf.len() >= end + 4 + length {
            return Ok(());
        }
    }
}

/// The median of `values` (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// The `q`-quantile (0..=1) of `values` by nearest rank.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = (q * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK_OUT: &str = "Running 10s test @ http://127.0.0.1:8080/bench
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.33us  100.10us   5.00ms   90.00%
    Req/Sec    78.90k     1.20k   80.00k    70.00%
  785123 requests in 10.00s, 120.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  78512.30
Transfer/sec:     12.00MB
";

    #[test]
    fn parses_wrk_output() {
        let t = parse_wrk(WRK_OUT).expect("parses");
        assert_eq!(t.requests, 785_123);
        assert!((t.requests_per_sec - 78_512.3).abs() < 1e-6);
        assert_eq!(t.errors, 7);
        assert_eq!(t.non_2xx, 4);
        assert!(parse_wrk("garbage").is_none());
    }

    #[test]
    fn parses_oha_json() {
        let json = r#"{"summary":{"successRate":1.0,"requestsPerSec":4999.5},
            "latencyPercentiles":{"p50":0.0001,"p99":0.0005,"p99.9":0.002}}"#;
        let l = parse_oha(json, 5000).expect("parses");
        assert!((l.p50_ms - 0.1).abs() < 1e-9);
        assert!((l.p99_ms - 0.5).abs() < 1e-9);
        assert!((l.p999_ms - 2.0).abs() < 1e-9);
        assert!(parse_oha("{}", 1).is_err());
    }

    #[test]
    fn medians_and_quantiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(500.0));
        assert_eq!(quantile(&v, 0.99), Some(990.0));
        assert_eq!(quantile(&v, 1.0), Some(1000.0));
    }

    #[tokio::test]
    async fn holds_keep_alive_connections_to_the_backend() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(super::super::backend::serve(listener));
        let held = hold_connections(addr, "/bench", 50).await.expect("held");
        assert_eq!(held.len(), 50);
        server.abort();
    }
}
