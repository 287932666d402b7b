//! hyper, for every connection the fast path hands over (HTTP/2 with prior
//! knowledge, chunked bodies, `Expect`, upgrades, other methods, malformed
//! heads): the same pipeline behind hyper's full HTTP implementation.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::rewind::Rewind;
use crate::balance::Priority;
use crate::proxy::limits::HyperBody;
use crate::proxy::pipeline::{self, ClientRequest};
use crate::state::Shared;

/// Serves handed-over connections with hyper.
pub struct Fallback {
    builder: auto::Builder<TokioExecutor>,
    shared: Arc<Shared>,
    /// The network of the listener, when it is bound to one.
    bound: Option<Arc<str>>,
}

impl Fallback {
    pub fn new(shared: Arc<Shared>, bound: Option<Arc<str>>) -> Self {
        Self {
            builder: auto::Builder::new(TokioExecutor::new()),
            shared,
            bound,
        }
    }

    /// The network of the listener, when it is bound to one.
    pub fn bound(&self) -> Option<&str> {
        self.bound.as_deref()
    }

    /// Serves the rest of the connection; `read` is what the fast path has
    /// read and not served. On shutdown the connection closes gracefully:
    /// the request in flight is answered, no other is taken.
    pub async fn serve(&self, stream: TcpStream, read: Bytes, mut shutdown: watch::Receiver<bool>) {
        let shared = self.shared.clone();
        let bound = self.bound.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let shared = shared.clone();
            let bound = bound.clone();
            // Boxed: hyper keeps a slot the size of the service's future in
            // every connection for its whole life; the request path's
            // future is several KiB, which idle connections would carry.
            let handling = Box::pin(async move {
                let (parts, body) = request.into_parts();
                let request = ClientRequest {
                    method: &parts.method,
                    path: parts.uri.path(),
                    network: bound.as_deref(),
                    // HTTP/2 carries it as the `:authority`.
                    host: parts
                        .headers
                        .get(http::header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .or_else(|| parts.uri.authority().map(http::uri::Authority::as_str)),
                    request_id: shared.request_ids.resolve(&parts.headers),
                    priority: Priority::from_headers(&parts.headers),
                    body: HyperBody::new(&parts.headers, body),
                };
                pipeline::handle(&shared, request).await.into_http()
            });
            async move { Ok::<_, Infallible>(handling.await) }
        });
        let io = TokioIo::new(Rewind::new(read, stream));
        let conn = self.builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(conn);
        tokio::select! {
            // Biased: a connection that has its request is served before a
            // shutdown seen in the same poll closes it.
            biased;
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            // The watch guard is dropped inside the block: held across the
            // select it would make this future !Send.
            _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
                conn.as_mut().graceful_shutdown();
            }
        }
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}
