//! `SnapshotService` on real gRPC streams.
//!
//! Written by hand instead of with the generated server trait, because the
//! generated one re-encodes every message per stream; this one sends the
//! publisher's shared bytes through [`StreamCodec`] (the gzip-table form to
//! data planes whose Hello accepts it, the plain form to others). Requests are decoded
//! with the generated prost types as usual.
//!
//! Each stream runs one task: it waits for a new publication, new heights
//! (if its Hello accepts them), a message from the data plane, or shutdown.
//! Publications and heights arrive through `watch`es, so a slow stream only
//! ever sees the latest of each, never a backlog.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use meridian_common::chain::ChainKinds;
use meridian_common::proto;
use meridian_common::proto::data_plane_message::Message as Inbound;
use meridian_common::snapshot::Version;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;
use tonic::codegen::{Body, BoxFuture, StdError};
use tonic::server::{Grpc, NamedService, StreamingService};
use tonic::{Request, Response, Status, Streaming};

use super::codec::{SnapshotPush, StreamCodec, StreamItem};
use super::registry::DataPlanes;
use super::session::{Answer, Session};
use crate::snapshot::HeightsBoard;
use crate::snapshot::publisher::Current;

/// Largest gRPC message either way; big deployments outgrow the 4 MiB default.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A data plane has this long to say Hello after opening its stream.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The outbound half of a stream.
type Outbound = ReceiverStream<Result<StreamItem, Status>>;

/// The shared state of every stream.
#[derive(Debug)]
pub struct SnapshotStreams {
    current: Current,
    heights: Arc<HeightsBoard>,
    dataplanes: Arc<DataPlanes>,
    shutdown: watch::Receiver<bool>,
    pushes: AtomicU64,
    acks: AtomicU64,
    nacks: AtomicU64,
    heights_sent: AtomicU64,
}

impl SnapshotStreams {
    /// Streams publications from `current` and heights from `heights`; ends
    /// every stream on `shutdown`.
    pub fn new(
        current: Current,
        heights: Arc<HeightsBoard>,
        dataplanes: Arc<DataPlanes>,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<SnapshotStreams> {
        Arc::new(SnapshotStreams {
            current,
            heights,
            dataplanes,
            shutdown,
            pushes: AtomicU64::new(0),
            acks: AtomicU64::new(0),
            nacks: AtomicU64::new(0),
            heights_sent: AtomicU64::new(0),
        })
    }

    /// Snapshots pushed, ACKs and NACKs received since start.
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.pushes.load(Ordering::Relaxed),
            self.acks.load(Ordering::Relaxed),
            self.nacks.load(Ordering::Relaxed),
        )
    }

    /// Heights messages sent since start, over all streams.
    pub fn heights_sent(&self) -> u64 {
        self.heights_sent.load(Ordering::Relaxed)
    }

    /// Opens one stream. Response headers go out at once; the Hello is
    /// awaited in the stream's task, so a client that waits for headers
    /// before sending Hello works too.
    fn open(self: Arc<Self>, inbound: Streaming<proto::DataPlaneMessage>) -> Outbound {
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut inbound = inbound;
            match self.hello(&mut inbound).await {
                Ok(hello) => self.run(hello, inbound, tx).await,
                Err(status) => {
                    tracing::debug!(error = %status, "stream refused");
                    let _ = tx.send(Err(status)).await;
                }
            }
        });
        ReceiverStream::new(rx)
    }

    /// The stream's first message, which must be a valid Hello.
    async fn hello(
        &self,
        inbound: &mut Streaming<proto::DataPlaneMessage>,
    ) -> Result<proto::Hello, Status> {
        let mut shutdown = self.shutdown.clone();
        let first = tokio::select! {
            first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message()) => first
                .map_err(|_| Status::deadline_exceeded("no Hello within 10 s"))??,
            _ = shutdown.wait_for(|stop| *stop) => {
                return Err(Status::unavailable("control plane is shutting down"));
            }
        };
        let hello = match first.and_then(|m| m.message) {
            Some(Inbound::Hello(hello)) => hello,
            _ => return Err(Status::invalid_argument("the first message must be Hello")),
        };
        check_hello(&hello)?;
        Ok(hello)
    }

    async fn run(
        &self,
        hello: proto::Hello,
        mut inbound: Streaming<proto::DataPlaneMessage>,
        tx: mpsc::Sender<Result<StreamItem, Status>>,
    ) {
        let serves = ChainKinds::from_names(&hello.chain_kinds);
        let stream_id =
            self.dataplanes
                .connected(&hello.dataplane_id, &hello.region, &serves.names());
        let held: Version = hello.held_version.into();
        tracing::info!(dataplane = %hello.dataplane_id, region = %hello.region,
            held = %held, stream = stream_id, table_gzip = hello.accepts_table_gzip,
            heights = hello.accepts_heights,
            "data plane connected");
        let mut session = Session::new(format!("s{stream_id}"), held, &hello.held_content_hash);
        if let Some(rejected) = self.dataplanes.nacked_version(&hello.dataplane_id) {
            // Parks the data plane, not just one stream: reconnecting must
            // not be a way to get a rejected version again.
            session.park(rejected);
        }
        let gzip = hello.accepts_table_gzip;
        let wants_heights = hello.accepts_heights;
        let id = hello.dataplane_id;
        let mut current = self.current.clone();
        let mut heights = self.heights.subscribe();
        let mut shutdown = self.shutdown.clone();
        // Mark the current values seen; they are sent right below, the
        // snapshot first (heights name networks of the table).
        let mut latest = current.borrow_and_update().clone();
        let mut latest_heights = heights.borrow_and_update().clone();
        let mut left_out: Vec<String> = Vec::new();
        let end = loop {
            if let Some(published) = latest.take()
                && let form = published.form_for(serves)
                && let Some(nonce) = session.offer(published.version, &form.content_hash)
            {
                tracing::debug!(dataplane = %id, version = %published.version, %nonce, "pushing snapshot");
                if form.left_out != left_out {
                    if !form.left_out.is_empty() {
                        tracing::info!(dataplane = %id, version = %published.version,
                            networks = ?form.left_out, serves = ?serves.names(),
                            "networks of chain kinds this data plane does not serve are left out of its table");
                    }
                    left_out.clone_from(&form.left_out);
                    self.dataplanes.left_out(&id, stream_id, &left_out);
                }
                let encoded = if gzip {
                    &form.encoded_gzip
                } else {
                    &form.encoded
                };
                let push = SnapshotPush {
                    encoded: encoded.clone(),
                    nonce,
                };
                if tx.send(Ok(StreamItem::Snapshot(push))).await.is_err() {
                    break "outbound closed";
                }
                self.pushes.fetch_add(1, Ordering::Relaxed);
                // Heights follow every snapshot: the data plane ignored
                // those of networks its table did not have yet.
                if wants_heights {
                    latest_heights = heights.borrow_and_update().clone();
                }
            }
            if wants_heights && let Some(h) = latest_heights.take() {
                if tx
                    .send(Ok(StreamItem::Encoded(h.encoded.clone())))
                    .await
                    .is_err()
                {
                    break "outbound closed";
                }
                self.heights_sent.fetch_add(1, Ordering::Relaxed);
            }
            tokio::select! {
                changed = current.changed() => match changed {
                    Ok(()) => latest = current.borrow_and_update().clone(),
                    Err(_) => break "publisher stopped",
                },
                changed = heights.changed(), if wants_heights => match changed {
                    Ok(()) => latest_heights = heights.borrow_and_update().clone(),
                    Err(_) => break "heights stopped",
                },
                message = inbound.message() => match message {
                    Ok(Some(m)) => self.answer(&id, &mut session, m),
                    Ok(None) => break "data plane closed the stream",
                    Err(status) => {
                        tracing::debug!(dataplane = %id, error = %status, "stream error");
                        break "stream error";
                    }
                },
                () = tx.closed() => break "outbound closed",
                _ = shutdown.wait_for(|stop| *stop) => {
                    let _ = tx.try_send(Err(Status::unavailable("control plane is shutting down")));
                    break "shutdown";
                }
            }
        };
        tracing::info!(dataplane = %id, stream = stream_id, why = end, "data plane disconnected");
        self.dataplanes.disconnected(&id, stream_id);
    }

    fn answer(&self, id: &str, session: &mut Session, message: proto::DataPlaneMessage) {
        self.dataplanes.seen(id);
        match message.message {
            Some(Inbound::Ack(ack)) => {
                let version: Version = ack.version.into();
                match session.on_ack(version, &ack.nonce) {
                    Answer::Acked(v) => {
                        self.acks.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(dataplane = %id, version = %v, "ack");
                        self.dataplanes.acked(id, v);
                    }
                    _ => tracing::debug!(dataplane = %id, version = %version, nonce = %ack.nonce,
                        "ack of a push this stream did not make; ignored"),
                }
            }
            Some(Inbound::Nack(nack)) => {
                let version: Version = nack.version.into();
                match session.on_nack(version, &nack.nonce) {
                    Answer::Nacked(v) => {
                        self.nacks.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(dataplane = %id, version = %v, error = %nack.error,
                            "data plane rejected a snapshot; parked until a newer version");
                        self.dataplanes.nacked(id, v, &nack.error);
                    }
                    _ => tracing::debug!(dataplane = %id, version = %version, nonce = %nack.nonce,
                        "nack of a push this stream did not make; ignored"),
                }
            }
            Some(Inbound::Hello(_)) => {
                tracing::debug!(dataplane = %id, "second Hello on a stream; ignored");
            }
            None => {}
        }
    }
}

/// Refuses Hellos whose identity could not be shown or stored sensibly.
fn check_hello(hello: &proto::Hello) -> Result<(), Status> {
    let printable = |s: &str| s.chars().all(|c| !c.is_control());
    if hello.dataplane_id.is_empty()
        || hello.dataplane_id.len() > 256
        || !printable(&hello.dataplane_id)
    {
        return Err(Status::invalid_argument(
            "Hello.dataplane_id must be 1-256 printable characters",
        ));
    }
    if hello.region.len() > 128 || !printable(&hello.region) {
        return Err(Status::invalid_argument(
            "Hello.region must be at most 128 printable characters",
        ));
    }
    Ok(())
}

/// The `Stream` method as tonic's streaming service.
struct StreamMethod(Arc<SnapshotStreams>);

impl StreamingService<proto::DataPlaneMessage> for StreamMethod {
    type Response = StreamItem;
    type ResponseStream = Outbound;
    type Future = BoxFuture<Response<Outbound>, Status>;

    fn call(&mut self, request: Request<Streaming<proto::DataPlaneMessage>>) -> Self::Future {
        let streams = self.0.clone();
        Box::pin(async move { Ok(Response::new(streams.open(request.into_inner()))) })
    }
}

/// `SnapshotService` for `tonic::transport::Server::add_service`.
#[derive(Debug, Clone)]
pub struct SnapshotServer {
    streams: Arc<SnapshotStreams>,
}

impl SnapshotServer {
    pub fn new(streams: Arc<SnapshotStreams>) -> SnapshotServer {
        SnapshotServer { streams }
    }
}

impl NamedService for SnapshotServer {
    const NAME: &'static str = proto::snapshot_service_server::SERVICE_NAME;
}

impl<B> tonic::codegen::Service<http::Request<B>> for SnapshotServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let streams = self.streams.clone();
        Box::pin(async move {
            if req.uri().path() != "/meridian.v1.SnapshotService/Stream" {
                return Ok(Status::unimplemented("no such method").into_http());
            }
            // No transport compression on pushes: it would compress the
            // table once per stream. The table comes compressed once per
            // version in `table_gzip` to data planes that accept it.
            let mut grpc = Grpc::new(StreamCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
            Ok(grpc.streaming(StreamMethod(streams), req).await)
        })
    }
}
