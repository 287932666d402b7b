//! Binding listeners: the one place every Meridian socket is opened.
//!
//! Authentication (mTLS with rustls) will wrap what is bound here, so no
//! other module calls `TcpListener::bind` directly.

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// A listener that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} for {what}: {source}")]
pub struct ListenError {
    pub what: &'static str,
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds `addr` for the purpose `what` (named in errors and logs).
pub async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ListenError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError { what, addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ListenError { what, addr, source })?;
    tracing::info!(%local, what, "listening");
    Ok(listener)
}
