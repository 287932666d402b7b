//! The client listener: every connection's requests go through
//! [`super::pipeline::handle`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::limits::HyperBody;
use super::pipeline::{self, ClientRequest};
use crate::balance::Priority;
use crate::state::Shared;

/// Serves client JSON-RPC on `listener` until `shutdown` turns true, then
/// lets open requests finish for up to `drain`.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let service = service_fn(move |request: Request<Incoming>| {
        let shared = shared.clone();
        // Boxed: hyper keeps a slot the size of the service's future in
        // every connection for its whole life; the request path's future
        // is several KiB, which idle keep-alive connections would carry.
        let handling = Box::pin(async move {
            let (parts, body) = request.into_parts();
            let request = ClientRequest {
                method: &parts.method,
                path: parts.uri.path(),
                request_id: shared.request_ids.resolve(&parts.headers),
                priority: Priority::from_headers(&parts.headers),
                body: HyperBody::new(&parts.headers, body),
            };
            pipeline::handle(&shared, request).await.into_http()
        });
        async move { Ok::<_, Infallible>(handling.await) }
    });
    meridian_common::serve::serve(listener, service, shutdown, drain).await;
}
