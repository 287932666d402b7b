//! The client listener.
//!
//! Every connection starts on the HTTP/1.1 fast path
//! ([`connection`]): JSON-RPC `POST`s are parsed, served and answered in
//! the connection's own task, with one buffer and no per-request channel or
//! header map. The first request that needs more of HTTP hands the
//! connection, with the bytes already read, to hyper ([`fallback`]) for
//! the rest of its life. Both run the same [`crate::proxy::pipeline`].

mod connection;
mod encode;
mod fallback;
mod head;
mod idle;
mod rewind;

use std::sync::Arc;
use std::time::Duration;

use meridian_common::serve::accept;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::state::Shared;
use fallback::Fallback;

/// Serves client JSON-RPC on `listener` (every request for network `bound`
/// when it is bound to one) until `shutdown` turns true, then
/// stops accepting, closes idle connections, and lets requests in flight
/// finish for up to `drain`.
pub async fn serve(
    listener: TcpListener,
    bound: Option<Arc<str>>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let fallback = Arc::new(Fallback::new(shared.clone(), bound));
    // Every connection task holds a sender; `recv` ends once all are gone
    // (an aborted task drops its sender too).
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    let mut connections = idle::Connections::default();
    loop {
        tokio::select! {
            stream = accept(&listener) => {
                let (shared, fallback, stop, open) =
                    (shared.clone(), fallback.clone(), shutdown.clone(), open.clone());
                let state = connections.state();
                let task = tokio::spawn({
                    let state = state.clone();
                    async move {
                        connection::run(stream, shared, fallback, stop, &state).await;
                        drop(open);
                    }
                });
                connections.add(state, task.abort_handle());
            }
            // The watch guard is dropped inside the block: held across the
            // select it would make this future !Send.
            _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => break,
        }
    }
    drop(listener);
    let closed = connections.close_idle();
    tracing::debug!(closed, "shutdown: idle client connections closed");
    drop(open);
    if tokio::time::timeout(drain, all_closed.recv())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain period; closing them");
    }
}
