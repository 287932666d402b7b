//! The client listener: every connection's requests go through
//! [`super::pipeline::handle`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::pipeline;
use crate::state::Shared;

/// Serves client JSON-RPC on `listener` until `shutdown` turns true, then
/// lets open requests finish for up to `drain`.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let service = service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(pipeline::handle(shared, request).await) }
    });
    meridian_common::serve::serve(listener, service, shutdown, drain).await;
}
