//! Snapshot fan-out: one control plane, many data-plane streams, a large
//! routing table, and the time from one change to every stream's ACK.
//!
//! The control plane is the real `meridian-control` binary (its RSS is then
//! its own). The data planes are simulated in this process: each is its own
//! gRPC connection running `SnapshotService.Stream` — Hello, then an Ack for
//! every Snapshot, as a real data plane does; their Hello accepts the
//! gzip-compressed table, as a real data plane's does. They decode only the
//! snapshot's version and nonce (a prost message with just those fields; the table is
//! skipped as an unknown field), so the bench process does not spend a second
//! decoding a thousand copies of the table and distort the timing.
//!
//! Probe load: the upstreams all point at the shared backend and are probed
//! once at start (a 10-minute interval keeps probes out of the measurement).
//! The change measured is an admin call (AddUpstream / RemoveUpstream of one
//! extra upstream, alternating), which the control plane publishes at once;
//! each round waits for the table to be quiet again before the next.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::uri::PathAndQuery;
use meridian_proto::v1 as pb;
use pb::admin_service_client::AdminServiceClient;
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use super::error::BenchError;
use super::measure::{median, quantile};
use super::process::{Managed, Spawn, free_addr};
use super::procfs;
use meridian_test_kit::poll::try_eventually;
use meridian_test_kit::rpc::RpcClient;

/// Largest message accepted from the control plane (a 10,000-upstream table
/// is about a megabyte).
const MAX_MESSAGE: usize = 256 * 1024 * 1024;
/// Upstreams per network in the generated config.
const UPSTREAMS_PER_NETWORK: usize = 1_000;
/// How long the setup steps (probes, connects) may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(180);
/// How long one round may take to reach every stream.
const ROUND_TIMEOUT: Duration = Duration::from_secs(60);
/// Id of the upstream added and removed to trigger new versions.
const EXTRA_UPSTREAM: &str = "bench-extra";

/// What to run.
#[derive(Debug, Clone)]
pub struct FanoutOptions {
    /// Simulated data planes.
    pub streams: usize,
    /// Upstreams in the routing table.
    pub upstreams: usize,
    /// Changes measured.
    pub rounds: usize,
    /// The `meridian-control` binary.
    pub control: PathBuf,
    /// The backend every upstream points at.
    pub backend: SocketAddr,
    /// Directory for the config, the sled store and the log.
    pub work_dir: PathBuf,
}

/// One change and how long it took to reach every stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutRound {
    /// `add` or `remove`.
    pub change: String,
    /// Median over the streams, from the admin call to the stream's ACK.
    pub p50_ms: f64,
    /// 99th percentile over the streams.
    pub p99_ms: f64,
    /// The last stream.
    pub max_ms: f64,
    /// Version published for the change (`epoch.seq`).
    pub version: String,
}

/// The fan-out figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutResult {
    /// Simulated data planes.
    pub streams: usize,
    /// Upstreams in the routing table (as counted in the snapshot).
    pub upstreams: usize,
    /// Networks in the routing table.
    pub networks: usize,
    /// Each round.
    pub rounds: Vec<FanoutRound>,
    /// Median over rounds of the per-round median.
    pub p50_ms: f64,
    /// Median over rounds of the per-round 99th percentile.
    pub p99_ms: f64,
    /// Worst over rounds of the per-round maximum.
    pub max_ms: f64,
    /// Protobuf size of the snapshot (`encoded_len`).
    pub snapshot_bytes: usize,
    /// Median time to encode that snapshot once (in this process, prost).
    pub encode_ms: f64,
    /// Size of the table compressed as the control plane sends it to data
    /// planes that accept `table_gzip` (all real ones do).
    #[serde(default)]
    pub table_gzip_bytes: usize,
    /// Median time to compress the table once (in this process).
    #[serde(default)]
    pub compress_ms: f64,
    /// Control-plane RSS once the table is built, before streams connect.
    pub control_plane_rss_idle_kib: u64,
    /// Control-plane RSS with every stream connected, after the rounds.
    pub control_plane_rss_kib: u64,
}

/// The `control.toml` of the fan-out run: `upstreams` upstreams in networks
/// of up to 1,000, all pointing at `backend` (distinct URLs by path).
pub fn fanout_toml(
    dir: &Path,
    grpc: SocketAddr,
    http: SocketAddr,
    backend: SocketAddr,
    upstreams: usize,
) -> String {
    let mut text = format!(
        "[server]\ngrpc_listen = \"{grpc}\"\nhttp_listen = \"{http}\"\ndata_dir = \"{}\"\n",
        dir.join("control").display()
    );
    let regions = ["eu", "us", "ap"];
    let networks = upstreams.div_ceil(UPSTREAMS_PER_NETWORK).max(1);
    for n in 0..networks {
        text.push_str(&format!(
            "\n[[networks]]\nid = \"fan-{n}\"\nchain = \"evm\"\nchain_id = 1\n\
             probe_interval_ms = 600000\nprobe_timeout_ms = 30000\nhealthy_after = 1\n"
        ));
        let first = n * UPSTREAMS_PER_NETWORK;
        for u in first..upstreams.min(first + UPSTREAMS_PER_NETWORK) {
            text.push_str(&format!(
                "\n[[networks.upstreams]]\nid = \"u{u}\"\nurl = \"http://{backend}/fan/{u}\"\nregion = \"{}\"\n",
                regions[u % regions.len()]
            ));
        }
    }
    text
}

/// What one simulated data plane saw: every version received, when.
#[derive(Debug, Default)]
struct StreamLog {
    received: Mutex<Vec<(Version, Instant)>>,
    error: Mutex<Option<String>>,
}

type Version = (u64, u64);

impl StreamLog {
    fn latest(&self) -> Option<Version> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last()
            .map(|(v, _)| *v)
    }

    fn first_after(&self, base: Version) -> Option<Instant> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(v, _)| *v > base)
            .map(|(_, t)| *t)
    }

    fn error(&self) -> Option<String> {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// `ControlPlaneMessage` decoded only as far as a data plane needs to ACK:
/// wire-compatible with the real message (the `snapshot` oneof arm is field
/// 1; `version` and `nonce` are fields 1 and 2 of `Snapshot`).
#[derive(Clone, PartialEq, prost::Message)]
struct SnapshotHeaderMessage {
    #[prost(message, optional, tag = "1")]
    snapshot: Option<SnapshotHeader>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SnapshotHeader {
    #[prost(message, optional, tag = "1")]
    version: Option<pb::Version>,
    #[prost(string, tag = "2")]
    nonce: String,
}

/// Runs the fan-out benchmark.
pub async fn run(opts: &FanoutOptions) -> Result<FanoutResult, BenchError> {
    std::fs::create_dir_all(&opts.work_dir).map_err(BenchError::io(format!(
        "create {}",
        opts.work_dir.display()
    )))?;
    let grpc = free_addr()?;
    let http = free_addr()?;
    let config = opts.work_dir.join("control.toml");
    std::fs::write(
        &config,
        fanout_toml(&opts.work_dir, grpc, http, opts.backend, opts.upstreams),
    )
    .map_err(BenchError::io(format!("write {}", config.display())))?;
    let mut control = Spawn::new("fanout-control", &opts.control)
        .args(["--config".as_ref(), config.as_os_str()])
        .start(&opts.work_dir)?;

    let client = RpcClient::new();
    let ready_url = format!("http://{http}/ready");
    let ready = try_eventually(SETUP_TIMEOUT, || {
        let client = client.clone();
        let url = ready_url.clone();
        async move { matches!(client.get(&url).await, Ok(r) if r.status == 200) }
    })
    .await;
    control.check_alive()?;
    if ready.is_err() {
        return Err(control.failure(format!("{ready_url} not 200 within {SETUP_TIMEOUT:?}")));
    }
    let channel = connect(grpc).await?;
    let mut admin = AdminServiceClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE);

    // Every upstream probed once and in the table, and no publication pending.
    let (snapshot, _) = settle(&mut admin, &mut control, &[], opts.upstreams).await?;
    let table = snapshot.table.as_ref();
    let networks = table.map_or(0, |t| t.networks.len());
    let upstreams = table.map_or(0, |t| t.networks.iter().map(|n| n.upstreams.len()).sum());
    let snapshot_bytes = snapshot.encoded_len();
    let encode_ms = encode_time_ms(&snapshot);
    let (table_gzip_bytes, compress_ms) = snapshot
        .table
        .as_ref()
        .map_or((0, f64::NAN), compress_time_ms);
    let control_plane_rss_idle_kib = procfs::rss_kib(control.pid())?;

    let logs = connect_streams(grpc, opts.streams).await?;
    let (mut current, _) = settle(&mut admin, &mut control, &logs, opts.upstreams).await?;

    let mut rounds = Vec::with_capacity(opts.rounds);
    for round in 0..opts.rounds {
        let base = version_of(&current);
        let add = round % 2 == 0;
        let started = Instant::now();
        let call = if add {
            admin
                .add_upstream(pb::AddUpstreamRequest {
                    network_id: "fan-0".into(),
                    upstream_id: EXTRA_UPSTREAM.into(),
                    url: format!("http://{}/fan/extra", opts.backend),
                    region: "eu".into(),
                    weight: 1,
                    roles: Vec::new(),
                })
                .await
                .map(|_| ())
        } else {
            admin
                .remove_upstream(pb::RemoveUpstreamRequest {
                    network_id: "fan-0".into(),
                    upstream_id: EXTRA_UPSTREAM.into(),
                })
                .await
                .map(|_| ())
        };
        call.map_err(|s| BenchError::Grpc {
            what: format!(
                "round {round}: {} upstream",
                if add { "add" } else { "remove" }
            ),
            problem: s.to_string(),
        })?;
        let reached = try_eventually(ROUND_TIMEOUT, || {
            let logs = &logs;
            async move { logs.iter().all(|l| l.latest().is_some_and(|v| v > base)) }
        })
        .await;
        check_streams(&logs)?;
        if reached.is_err() {
            let behind = logs
                .iter()
                .filter(|l| l.latest().is_none_or(|v| v <= base))
                .count();
            return Err(control.failure(format!(
                "round {round}: {behind} of {} streams got no version after {}.{} within {ROUND_TIMEOUT:?}",
                logs.len(),
                base.0,
                base.1
            )));
        }
        let took: Vec<f64> = logs
            .iter()
            .filter_map(|l| l.first_after(base))
            .map(|t| t.saturating_duration_since(started).as_secs_f64() * 1000.0)
            .collect();
        let first_version = logs
            .iter()
            .filter_map(|l| {
                let rx = l.received.lock().unwrap_or_else(PoisonError::into_inner);
                rx.iter().find(|(v, _)| *v > base).map(|(v, _)| *v)
            })
            .min()
            .unwrap_or(base);
        rounds.push(FanoutRound {
            change: if add { "add" } else { "remove" }.into(),
            p50_ms: quantile(&took, 0.5).unwrap_or(f64::NAN),
            p99_ms: quantile(&took, 0.99).unwrap_or(f64::NAN),
            max_ms: quantile(&took, 1.0).unwrap_or(f64::NAN),
            version: format!("{}.{}", first_version.0, first_version.1),
        });
        current = settle(&mut admin, &mut control, &logs, 0).await?.0;
    }
    let control_plane_rss_kib = procfs::rss_kib(control.pid())?;
    drop(logs);
    control.stop();

    let p50s: Vec<f64> = rounds.iter().map(|r| r.p50_ms).collect();
    let p99s: Vec<f64> = rounds.iter().map(|r| r.p99_ms).collect();
    Ok(FanoutResult {
        streams: opts.streams,
        upstreams,
        networks,
        p50_ms: median(&p50s).unwrap_or(f64::NAN),
        p99_ms: median(&p99s).unwrap_or(f64::NAN),
        max_ms: rounds.iter().map(|r| r.max_ms).fold(f64::NAN, f64::max),
        rounds,
        snapshot_bytes,
        encode_ms,
        table_gzip_bytes,
        compress_ms,
        control_plane_rss_idle_kib,
        control_plane_rss_kib,
    })
}

async fn connect(addr: SocketAddr) -> Result<Channel, BenchError> {
    Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| BenchError::Grpc {
            what: format!("endpoint {addr}"),
            problem: e.to_string(),
        })?
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| BenchError::Grpc {
            what: format!("connect to the control plane at {addr}"),
            problem: e.to_string(),
        })
}

fn version_of(snapshot: &pb::Snapshot) -> Version {
    snapshot
        .version
        .as_ref()
        .map_or((0, 0), |v| (v.epoch, v.seq))
}

/// Waits until the published snapshot holds at least `min_upstreams`
/// upstreams, every stream has ACKed it, and it stays the same for a moment
/// (no publication pending). Returns it.
async fn settle(
    admin: &mut AdminServiceClient<Channel>,
    control: &mut Managed,
    logs: &[Arc<StreamLog>],
    min_upstreams: usize,
) -> Result<(pb::Snapshot, Version), BenchError> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let mut last: Option<Version> = None;
    loop {
        control.check_alive()?;
        check_streams(logs)?;
        let snapshot = admin
            .get_snapshot(pb::GetSnapshotRequest {})
            .await
            .map_err(|s| BenchError::Grpc {
                what: "GetSnapshot".into(),
                problem: s.to_string(),
            })?
            .into_inner()
            .snapshot
            .unwrap_or_default();
        let version = version_of(&snapshot);
        let count: usize = snapshot
            .table
            .as_ref()
            .map_or(0, |t| t.networks.iter().map(|n| n.upstreams.len()).sum());
        let acked = logs.iter().all(|l| l.latest() == Some(version));
        if count >= min_upstreams && acked && last == Some(version) {
            return Ok((snapshot, version));
        }
        last = (count >= min_upstreams && acked).then_some(version);
        if Instant::now() >= deadline {
            let behind = logs.iter().filter(|l| l.latest() != Some(version)).count();
            return Err(control.failure(format!(
                "not settled within {SETUP_TIMEOUT:?}: snapshot {}.{} holds {count} of {min_upstreams} upstreams, \
                 {behind} of {} streams have not ACKed it",
                version.0,
                version.1,
                logs.len()
            )));
        }
        // A settled table must stay unchanged across this pause.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn check_streams(logs: &[Arc<StreamLog>]) -> Result<(), BenchError> {
    match logs
        .iter()
        .enumerate()
        .find_map(|(i, l)| l.error().map(|e| (i, e)))
    {
        None => Ok(()),
        Some((i, e)) => Err(BenchError::Grpc {
            what: format!("simulated data plane bench-dp-{i}"),
            problem: e,
        }),
    }
}

/// Median time to encode `snapshot` once, over a few encodings.
fn encode_time_ms(snapshot: &pb::Snapshot) -> f64 {
    let mut times = Vec::new();
    let mut buf = Vec::with_capacity(snapshot.encoded_len());
    for _ in 0..15 {
        buf.clear();
        let start = Instant::now();
        // Encoding into a buffer of the right capacity cannot fail.
        let _ = snapshot.encode(&mut buf);
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    median(&times).unwrap_or(f64::NAN)
}

/// Size of `table` compressed as the control plane compresses it, and the
/// median time to compress it once.
fn compress_time_ms(table: &pb::RoutingTable) -> (usize, f64) {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..5 {
        let start = Instant::now();
        size = meridian_common::snapshot::gzip_table(table).len();
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    (size, median(&times).unwrap_or(f64::NAN))
}

/// Connects `n` simulated data planes, each on its own connection.
async fn connect_streams(grpc: SocketAddr, n: usize) -> Result<Vec<Arc<StreamLog>>, BenchError> {
    let gate = Arc::new(Semaphore::new(64));
    let mut logs = Vec::with_capacity(n);
    let mut connecting = tokio::task::JoinSet::new();
    for i in 0..n {
        let log = Arc::new(StreamLog::default());
        logs.push(log.clone());
        let gate = gate.clone();
        connecting.spawn(async move {
            let permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            let channel = connect(grpc).await.map_err(|e| e.to_string())?;
            drop(permit);
            tokio::spawn(data_plane(channel, i, log));
            Ok::<(), String>(())
        });
    }
    while let Some(joined) = connecting.join_next().await {
        let outcome = joined.map_err(|e| e.to_string()).and_then(|r| r);
        if let Err(problem) = outcome {
            return Err(BenchError::Grpc {
                what: "connect a simulated data plane".into(),
                problem,
            });
        }
    }
    Ok(logs)
}

/// One simulated data plane: Hello, then ACK every snapshot at once.
async fn data_plane(channel: Channel, i: usize, log: Arc<StreamLog>) {
    if let Err(e) = data_plane_stream(channel, i, &log).await {
        *log.error.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
    }
}

async fn data_plane_stream(channel: Channel, i: usize, log: &StreamLog) -> Result<(), String> {
    let (tx, rx) = mpsc::channel::<pb::DataPlaneMessage>(4);
    let hello = pb::DataPlaneMessage {
        message: Some(pb::data_plane_message::Message::Hello(pb::Hello {
            dataplane_id: format!("bench-dp-{i}"),
            region: ["eu", "us", "ap"][i % 3].into(),
            held_version: None,
            held_content_hash: String::new(),
            // As every real data plane: the table comes compressed once
            // per version (the snapshot header decoder skips it either way).
            accepts_table_gzip: true,
            // Heights too; the loop below skips them.
            accepts_heights: true,
            chain_kinds: meridian_common::chain::ChainKinds::all().names(),
        })),
    };
    tx.send(hello).await.map_err(|e| e.to_string())?;
    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(MAX_MESSAGE);
    grpc.ready().await.map_err(|e| format!("not ready: {e}"))?;
    let codec = tonic_prost::ProstCodec::<pb::DataPlaneMessage, SnapshotHeaderMessage>::default();
    let path = PathAndQuery::from_static("/meridian.v1.SnapshotService/Stream");
    let mut inbound = grpc
        .streaming(tonic::Request::new(ReceiverStream::new(rx)), path, codec)
        .await
        .map_err(|s| format!("Stream refused: {s}"))?
        .into_inner();
    loop {
        let message = match inbound.message().await {
            Ok(Some(m)) => m,
            Ok(None) => return Err("the control plane ended the stream".into()),
            Err(s) => return Err(format!("stream failed: {s}")),
        };
        let Some(snapshot) = message.snapshot else {
            continue;
        };
        let received = Instant::now();
        let version = snapshot
            .version
            .as_ref()
            .map_or((0, 0), |v| (v.epoch, v.seq));
        let ack = pb::DataPlaneMessage {
            message: Some(pb::data_plane_message::Message::Ack(pb::Ack {
                version: snapshot.version,
                nonce: snapshot.nonce,
            })),
        };
        tx.send(ack)
            .await
            .map_err(|_| "stream closed while ACKing".to_owned())?;
        log.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((version, received));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_message_decodes_a_real_snapshot_message() {
        let real = pb::ControlPlaneMessage {
            message: Some(pb::control_plane_message::Message::Snapshot(pb::Snapshot {
                version: Some(pb::Version { epoch: 3, seq: 9 }),
                nonce: "n-1".into(),
                content_hash: "abc".into(),
                table: Some(pb::RoutingTable {
                    networks: vec![pb::Network {
                        id: "x".into(),
                        ..Default::default()
                    }],
                    generated_at_unix_ms: 5,
                }),
                table_gzip: Default::default(),
            })),
        };
        let bytes = real.encode_to_vec();
        let header = SnapshotHeaderMessage::decode(bytes.as_slice()).expect("decodes");
        let snap = header.snapshot.expect("snapshot arm");
        assert_eq!(snap.version, Some(pb::Version { epoch: 3, seq: 9 }));
        assert_eq!(snap.nonce, "n-1");
    }

    #[test]
    fn fanout_config_parses_with_all_upstreams() {
        let dir = Path::new("/tmp/fan");
        let text = fanout_toml(
            dir,
            "127.0.0.1:1".parse().expect("addr"),
            "127.0.0.1:2".parse().expect("addr"),
            "127.0.0.1:3".parse().expect("addr"),
            2_500,
        );
        let config = meridian_control_plane::config::ControlConfig::from_toml_str(
            &text,
            &dir.join("control.toml"),
        )
        .expect("valid");
        assert_eq!(config.networks.len(), 3);
        let total: usize = config.networks.iter().map(|n| n.upstreams.len()).sum();
        assert_eq!(total, 2_500);
    }
}
