//! Wiring and lifecycle of one data plane.
//!
//! Start order matters for static stability: the persisted snapshot is
//! loaded and swapped in first, then both listeners are bound, then the
//! control-plane client starts in the background. So `start` returns a data
//! plane that already serves its last snapshot even when the control plane
//! is unreachable.

use std::net::SocketAddr;
use std::sync::Arc;

use meridian_common::listen::{ListenError, bind};
use meridian_common::snapshot::Version;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin_http;
use crate::config::ProxyConfig;
use crate::control::client::BadControlPlane;
use crate::control::{Applier, ControlClient, SnapshotFile};
use crate::server;
use crate::state::Shared;

/// Why a data plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("cannot use state dir {path}: {source}")]
    StateDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    ControlPlane(#[from] BadControlPlane),
    #[error(transparent)]
    SharedCache(#[from] crate::cache::shared::SharedTierError),
    #[error("cannot wait for a shutdown signal: {0}")]
    Signal(#[source] std::io::Error),
}

/// A running data plane.
pub struct DataPlane {
    shared: Arc<Shared>,
    listen_addr: SocketAddr,
    network_addrs: Vec<(String, SocketAddr)>,
    admin_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl DataPlane {
    /// Loads the persisted snapshot (if any) and serves it at once, binds
    /// both listeners, and starts the control-plane stream client (which
    /// reconnects forever). Returns once listening, even when the control
    /// plane is unreachable.
    pub async fn start(config: ProxyConfig) -> Result<DataPlane, StartError> {
        let shared = Shared::new(&config)?;
        let file = SnapshotFile::new(&config.state_dir);
        file.ensure_dir().map_err(|source| StartError::StateDir {
            path: config.state_dir.clone(),
            source,
        })?;
        let applier = Arc::new(Applier::new(shared.clone(), file));
        applier.restore();
        let client = ControlClient::new(&config, applier, shared.clone())?;

        let listener = bind("client JSON-RPC", config.listen).await?;
        let mut network_listeners = Vec::with_capacity(config.network_listen.len());
        for (network, addr) in &config.network_listen {
            network_listeners.push((
                network.clone(),
                bind("network listener", *addr).await?,
                *addr,
            ));
        }
        let admin = bind("admin HTTP", config.admin_listen).await?;
        let local = |l: &tokio::net::TcpListener, addr| {
            l.local_addr().map_err(|source| ListenError {
                what: "local address",
                addr,
                source,
            })
        };
        let listen_addr = local(&listener, config.listen)?;
        let admin_addr = local(&admin, config.admin_listen)?;

        let mut network_addrs = Vec::with_capacity(network_listeners.len());
        for (network, l, addr) in &network_listeners {
            network_addrs.push((network.clone(), local(l, *addr)?));
        }

        let (shutdown, stop) = watch::channel(false);
        let mut tasks = vec![
            tokio::spawn(server::serve(
                listener,
                None,
                shared.clone(),
                stop.clone(),
                config.drain_timeout,
            )),
            tokio::spawn(admin_http::serve(
                admin,
                shared.clone(),
                stop.clone(),
                config.drain_timeout,
            )),
            tokio::spawn(crate::upstream::sweeper::run(shared.clone(), stop.clone())),
            tokio::spawn(client.run(stop.clone())),
        ];
        for (network, l, _) in network_listeners {
            tasks.push(tokio::spawn(server::serve(
                l,
                Some(Arc::from(network.as_str())),
                shared.clone(),
                stop.clone(),
                config.drain_timeout,
            )));
        }
        tracing::info!(
            id = %config.dataplane_id,
            region = %config.region,
            %listen_addr,
            network_listeners = ?network_addrs,
            %admin_addr,
            control_plane = %config.control_plane,
            "data plane started"
        );
        Ok(DataPlane {
            shared,
            listen_addr,
            network_addrs,
            admin_addr,
            shutdown,
            tasks,
        })
    }

    /// Where clients send JSON-RPC.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// The listener bound to `network`, if there is one.
    pub fn network_addr(&self, network: &str) -> Option<SocketAddr> {
        self.network_addrs
            .iter()
            .find(|(n, _)| n == network)
            .map(|(_, a)| *a)
    }

    /// Where `/health`, `/ready` and `/metrics` are served.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Version of the snapshot currently serving ([`Version::NONE`] if none).
    pub fn snapshot_version(&self) -> Version {
        self.shared.table.load().meta.version
    }

    /// The state shared by this data plane's parts (for tests and the sandbox).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops accepting, lets open requests drain, closes the control-plane
    /// stream and waits for every task.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "a data-plane task ended abnormally");
            }
        }
        tracing::info!("data plane stopped");
    }
}

/// Runs a data plane until SIGINT or SIGTERM.
pub async fn run(config: ProxyConfig) -> Result<(), StartError> {
    let data_plane = DataPlane::start(config).await?;
    wait_for_signal().await.map_err(StartError::Signal)?;
    tracing::info!("shutting down");
    data_plane.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
