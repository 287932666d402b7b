//! Wiring: store, inventory, probers, publisher, gRPC and HTTP servers.
//!
//! Start order matters: the epoch is bumped and persisted before the first
//! publication (versions never go backwards), and the first snapshot is
//! published before the listeners serve, so `/ready` and every new stream
//! have something at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use meridian_common::listen::{ListenError, bind};
use meridian_common::node_client::{NodeClientOptions, node_client};
use meridian_common::proto::admin_service_server::AdminServiceServer;
use meridian_common::snapshot::Version;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;

use crate::admin::Admin;
use crate::config::ControlConfig;
use crate::distribute::service::MAX_MESSAGE_BYTES;
use crate::distribute::{DataPlanes, SnapshotServer, SnapshotStreams};
use crate::health::prober;
use crate::http::{self, HttpState};
use crate::inventory::Inventory;
use crate::snapshot::publisher::decode_stored;
use crate::snapshot::{HeightsBoard, Publisher};
use crate::store::{SledStore, Store, StoreError};

/// HTTP/2 keepalive: a ping every 5 s, dead if unanswered for 5 s more, so a
/// vanished data plane is noticed within about ten seconds.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long shutdown waits for a task before aborting it.
const TASK_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot use the store in {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("cannot wait for shutdown signals: {0}")]
    Signal(#[source] std::io::Error),
}

/// A running control plane.
#[derive(Debug)]
pub struct ControlPlane {
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    publisher: Arc<Publisher>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    store: Arc<SledStore>,
}

impl ControlPlane {
    /// Opens the sled store in `config.server.data_dir`, binds `grpc_listen`
    /// and `http_listen` (port 0 allowed), starts probes, publisher and
    /// servers; returns once listening.
    pub async fn start(config: ControlConfig) -> Result<ControlPlane, StartError> {
        let dir = config.server.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|source| StartError::DataDir {
            path: dir.clone(),
            source,
        })?;
        let store_error = |source| StartError::Store {
            path: dir.clone(),
            source,
        };
        let store = Arc::new(SledStore::open(&dir).map_err(store_error)?);
        match Self::start_with(config, store.clone()).await {
            Ok(plane) => Ok(plane),
            Err(e) => {
                // Release the file lock, so a corrected retry can open it.
                let _ = store.close();
                Err(e)
            }
        }
    }

    async fn start_with(
        config: ControlConfig,
        store: Arc<SledStore>,
    ) -> Result<ControlPlane, StartError> {
        let store_error = |source| StartError::Store {
            path: config.server.data_dir.clone(),
            source,
        };
        let dyn_store: Arc<dyn Store> = store.clone();
        let epoch = store.next_epoch().map_err(store_error)?;
        let runtime = store.runtime_upstreams().map_err(store_error)?;
        let tombstones = store.tombstones().map_err(store_error)?;
        let seed = store
            .last_snapshot()
            .map_err(store_error)?
            .and_then(|bytes| decode_stored(&bytes));
        let inventory = Arc::new(Inventory::new(&config, runtime, &tombstones, seed.as_ref()));
        let publisher = Arc::new(Publisher::new(epoch, inventory.clone(), dyn_store.clone()));
        publisher.publish_if_changed();
        tracing::info!(epoch, version = %publisher.current_version(), "control plane state loaded");

        let grpc_listener = bind("grpc (snapshots, admin)", config.server.grpc_listen).await?;
        let http_listener = bind("http (health, metrics)", config.server.http_listen).await?;
        let local = |l: &TcpListener, what, addr| {
            l.local_addr()
                .map_err(|source| StartError::Listen(ListenError { what, addr, source }))
        };
        let grpc_addr = local(&grpc_listener, "grpc", config.server.grpc_listen)?;
        let http_addr = local(&http_listener, "http", config.server.http_listen)?;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let dirty = Arc::new(Notify::new());
        let heights = Arc::new(HeightsBoard::default());
        let client = node_client(&NodeClientOptions::default());
        let mut tasks = Vec::new();
        let mut wakes = BTreeMap::new();
        for network in inventory.network_ids() {
            let wake = Arc::new(Notify::new());
            wakes.insert(network.clone(), wake.clone());
            tasks.push(tokio::spawn(prober::run(
                network,
                inventory.clone(),
                client.clone(),
                wake,
                prober::Sinks {
                    dirty: dirty.clone(),
                    heights: heights.clone(),
                },
                shutdown_rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(
            publisher.clone().run(dirty, shutdown_rx.clone()),
        ));

        let dataplanes = Arc::new(DataPlanes::load(dyn_store.clone()));
        let streams = SnapshotStreams::new(
            publisher.subscribe(),
            heights.clone(),
            dataplanes.clone(),
            shutdown_rx.clone(),
        );
        let admin = Admin::new(
            inventory.clone(),
            dyn_store,
            publisher.clone(),
            dataplanes.clone(),
            wakes,
        );
        tasks.push(tokio::spawn(serve_grpc(
            grpc_listener,
            SnapshotServer::new(streams.clone()),
            admin,
            shutdown_rx.clone(),
        )));
        let http_state = Arc::new(HttpState {
            publisher: publisher.clone(),
            inventory,
            dataplanes,
            streams,
        });
        tasks.push(tokio::spawn(http::serve(
            http_listener,
            http_state,
            shutdown_rx,
        )));

        Ok(ControlPlane {
            grpc_addr,
            http_addr,
            publisher,
            shutdown,
            tasks,
            store,
        })
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The current published version.
    pub fn current_version(&self) -> Version {
        self.publisher.current_version()
    }

    /// Stops every task and server, flushes sled and drops every handle to
    /// it, so the same data_dir can be reopened right after this returns.
    pub async fn shutdown(self) {
        self.shutdown.send_replace(true);
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(TASK_STOP_TIMEOUT, task).await.is_err() {
                tracing::warn!("a task did not stop in time; aborting it");
                abort.abort();
            }
        }
        let store = self.store;
        let closed = tokio::task::spawn_blocking(move || store.close()).await;
        match closed {
            Ok(Ok(())) => tracing::info!("control plane stopped; store flushed"),
            Ok(Err(e)) => tracing::error!(error = %e, "flushing the store failed"),
            Err(e) => tracing::error!(error = %e, "closing the store panicked"),
        }
    }
}

/// Serves `SnapshotService` and `AdminService` on one listener until shutdown.
async fn serve_grpc(
    listener: TcpListener,
    snapshots: SnapshotServer,
    admin: Admin,
    mut shutdown: watch::Receiver<bool>,
) {
    let admin = AdminServiceServer::new(admin)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let result = Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .tcp_nodelay(true)
        .add_service(snapshots)
        .add_service(admin)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "gRPC server failed");
    }
}

/// Runs until SIGINT or SIGTERM, then shuts down cleanly.
pub async fn run(config: ControlConfig) -> Result<(), StartError> {
    let plane = ControlPlane::start(config).await?;
    tracing::info!(grpc = %plane.grpc_addr(), http = %plane.http_addr(), "control plane running");
    let signal = wait_for_signal().await;
    plane.shutdown().await;
    signal
}

async fn wait_for_signal() -> Result<(), StartError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(StartError::Signal)?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map_err(StartError::Signal)?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.map_err(StartError::Signal)?;
    tracing::info!("shutdown signal received");
    Ok(())
}
