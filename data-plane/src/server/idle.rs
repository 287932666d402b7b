//! Which client connections sit between requests, so that shutdown can
//! close them without every read of every request also waiting on a
//! shutdown signal (a `watch` or `Notify` future takes a lock each time it
//! is polled or dropped; this takes none).
//!
//! Each connection marks itself idle before it waits for the next request
//! and busy once it has one; shutdown raises the stop flag, then aborts
//! every connection it sees idle. Both sides store, then load the other's
//! flag (sequentially consistent), so at least one of them sees the other:
//! either shutdown aborts the idle connection, or the connection sees the
//! flag before it reads and closes itself. A connection busy with a
//! request finishes it, sees the flag and closes after its answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::AbortHandle;

/// One connection's side.
#[derive(Debug)]
pub struct ConnState {
    busy: AtomicBool,
    stop: Arc<AtomicBool>,
}

impl ConnState {
    /// Between requests: may the connection wait for the next one? `false`
    /// once shutdown has begun (close now).
    pub fn idle(&self) -> bool {
        self.busy.store(false, Ordering::SeqCst);
        !self.stop.load(Ordering::SeqCst)
    }

    /// A request was taken: shutdown lets it finish.
    pub fn busy(&self) {
        self.busy.store(true, Ordering::SeqCst);
    }

    /// Whether shutdown has begun.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// The listener's side: every connection it accepted, owned by the accept
/// loop alone (no lock).
#[derive(Debug, Default)]
pub struct Connections {
    stop: Arc<AtomicBool>,
    open: Vec<(Arc<ConnState>, AbortHandle)>,
    /// Length after the last sweep of finished connections: the next one
    /// comes at twice that, so sweeping costs O(1) per accept.
    swept_at: usize,
}

impl Connections {
    /// The state for a connection about to start (busy: it has not asked
    /// to wait yet).
    pub fn state(&self) -> Arc<ConnState> {
        Arc::new(ConnState {
            busy: AtomicBool::new(true),
            stop: self.stop.clone(),
        })
    }

    /// Remembers the started connection.
    pub fn add(&mut self, state: Arc<ConnState>, task: AbortHandle) {
        if self.open.len() >= 2 * self.swept_at.max(512) {
            self.open.retain(|(_, task)| !task.is_finished());
            self.swept_at = self.open.len();
        }
        self.open.push((state, task));
    }

    /// Begins shutdown: raises the stop flag and closes every idle
    /// connection; returns how many were closed.
    pub fn close_idle(&mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        let mut closed = 0;
        for (state, task) in &self.open {
            if !state.busy.load(Ordering::SeqCst) && !task.is_finished() {
                task.abort();
                closed += 1;
            }
        }
        self.open.clear();
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_closes_idle_connections_and_lets_busy_ones_finish() {
        let mut conns = Connections::default();
        let idle = conns.state();
        let busy = conns.state();
        assert!(idle.idle(), "no shutdown yet: wait for the next request");
        let (idle_task, busy_task) = (
            tokio::spawn(std::future::pending::<()>()),
            tokio::spawn(std::future::pending::<()>()),
        );
        conns.add(idle.clone(), idle_task.abort_handle());
        conns.add(busy.clone(), busy_task.abort_handle());
        assert_eq!(conns.close_idle(), 1);
        assert!(idle_task.await.unwrap_err().is_cancelled());
        assert!(busy.stopping());
        assert!(!busy.idle(), "after its answer the busy one closes itself");
        busy_task.abort();
    }
}
