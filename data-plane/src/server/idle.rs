//! Which client connections sit between requests, so that shutdown can
//! close them without every read of every request also waiting on a
//! shutdown signal (a `watch` or `Notify` future takes a lock each time it
//! is polled or dropped; this takes none).
//!
//! Each connection is in one of three states: idle (waiting for the next
//! request, or inside a head with no request taken yet), busy (a request
//! taken), or closing (shutdown chose to abort it). Shutdown raises the stop
//! flag, then moves every idle connection to closing with a
//! compare-and-swap and aborts only those it moved; a connection that parses
//! a head moves itself from idle to busy with the same compare-and-swap, and
//! drops the request when shutdown won. So a request is either taken and
//! finished, or never taken: an abort can never cut one in the middle.
//!
//! Going idle, the connection stores its state and then loads the stop flag;
//! shutdown stores the flag and then loads the states (all sequentially
//! consistent), so at least one sees the other: either shutdown aborts the
//! idle connection, or the connection sees the flag and closes itself. A
//! busy connection finishes its request, sees the flag and closes after its
//! answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use tokio::task::AbortHandle;

const IDLE: u8 = 0;
const BUSY: u8 = 1;
const CLOSING: u8 = 2;

/// One connection's side.
#[derive(Debug)]
pub struct ConnState {
    phase: AtomicU8,
    stop: Arc<AtomicBool>,
}

impl ConnState {
    /// Between requests: may the connection wait for the next one? `false`
    /// once shutdown has begun (close now).
    pub fn idle(&self) -> bool {
        // Only the connection leaves busy, so a plain store cannot undo a
        // shutdown's closing (which is only ever set on an idle one).
        if self.phase.load(Ordering::SeqCst) == BUSY {
            self.phase.store(IDLE, Ordering::SeqCst);
        }
        !self.stop.load(Ordering::SeqCst)
    }

    /// A request's head was read: may the connection take it? `false` when
    /// shutdown has already chosen to abort the connection (the abort is on
    /// its way; the request must not start).
    #[must_use]
    pub fn busy(&self) -> bool {
        match self
            .phase
            .compare_exchange(IDLE, BUSY, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) | Err(BUSY) => true,
            Err(_) => false,
        }
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
            phase: AtomicU8::new(BUSY),
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
            let closing = state
                .phase
                .compare_exchange(IDLE, CLOSING, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
            if closing && !task.is_finished() {
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

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn a_head_read_after_shutdown_chose_the_connection_is_never_taken() {
        let mut conns = Connections::default();
        let state = conns.state();
        assert!(state.idle());
        let rt = runtime();
        let _guard = rt.enter();
        let task = rt.spawn(std::future::pending::<()>());
        conns.add(state.clone(), task.abort_handle());
        // Shutdown wins the race: the head that arrives next is dropped.
        assert_eq!(conns.close_idle(), 1);
        assert!(
            !state.busy(),
            "shutdown aborts it: the request must not start"
        );
    }

    #[test]
    fn a_connection_that_took_its_request_first_is_left_to_finish_it() {
        let mut conns = Connections::default();
        let state = conns.state();
        assert!(state.idle());
        assert!(state.busy(), "the head came first");
        assert!(state.busy(), "a pipelined head on a busy connection");
        let rt = runtime();
        let _guard = rt.enter();
        let task = rt.spawn(std::future::pending::<()>());
        conns.add(state.clone(), task.abort_handle());
        assert_eq!(conns.close_idle(), 0, "busy: not aborted");
        assert!(!state.idle(), "after its answer it closes itself");
    }
}
