//! Serving HTTP on a bound listener until shutdown, with graceful drain.
//!
//! Both planes' small HTTP endpoints use this loop, so their connection
//! handling (HTTP/1.1 and h2c, keep-alive, graceful close) is written once.
//! The data plane's client listener has its own loop (an HTTP/1.1 fast path
//! in front of hyper) and shares [`accept`] with this one.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The response body type served by Meridian's HTTP endpoints.
pub type Body = BoxBody<Bytes, Infallible>;

/// The next connection on `listener`, with `TCP_NODELAY` set (answers are
/// written whole, so Nagle would only delay them). A failed accept
/// (typically EMFILE) is logged and retried after a short pause instead of
/// spinning.
pub async fn accept(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                return stream;
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves `service` on `listener` until `shutdown` turns true, then stops
/// accepting and waits up to `drain` for open connections to finish.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            stream = accept(&listener) => {
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service.clone());
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            // Drop the watch guard inside the block: holding it across the
            // select would make this future !Send.
            _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain period; closing them");
    }
}
