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
        // Boxed: hyper keeps a slot the size of the service's future in
        // every connection for its whole life; the request path's future
        // is several KiB, which idle keep-alive connections would carry.
        let handling = Box::pin(pipeline::handle(shared.clone(), request));
        async move { Ok::<_, Infallible>(handling.await) }
    });
    meridian_common::serve::serve(listener, service, shutdown, drain).await;
}
