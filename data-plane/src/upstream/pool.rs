//! The idle connections of one upstream, shared lock free by every request.
//!
//! A lock-free queue (first in, first out) plus a counter that bounds it:
//! requests take a connection and give it back without a lock, and the
//! queue allocates nothing until a connection is first kept, so thousands
//! of upstreams in a table cost nothing until they are used.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_queue::SegQueue;

use super::conn::Conn;

/// Below this idle time a connection is taken without polling it first
/// (which costs a `read` system call): it was answering a moment ago, and
/// nodes close idle connections after seconds (Go's and Node's HTTP
/// servers: 120 s and 5 s), not sooner. A connection closed anyway fails
/// its try like any broken exchange, and reads are retried elsewhere.
pub const VERIFY_AFTER: Duration = Duration::from_secs(1);

/// Idle connections of one upstream.
#[derive(Debug, Default)]
pub struct IdlePool {
    idle: SegQueue<Conn>,
    len: AtomicUsize,
}

impl IdlePool {
    /// A connection that can carry a request at `now`, if one is idle.
    /// Drops those idle longer than `idle_timeout` or found closed.
    /// `verify`: poll every connection before handing it out (for requests
    /// that must not be sent twice), not only those idle a while.
    pub fn take(&self, now: Instant, idle_timeout: Duration, verify: bool) -> Option<Conn> {
        while let Some(mut conn) = self.idle.pop() {
            self.len.fetch_sub(1, Ordering::Relaxed);
            let idle = now.saturating_duration_since(conn.last_used);
            if idle >= idle_timeout {
                continue;
            }
            if (verify || idle >= VERIFY_AFTER) && !conn.is_reusable() {
                continue;
            }
            return Some(conn);
        }
        None
    }

    /// Keeps `conn`, last used at `now`, for the next request unless
    /// `max_idle` are kept already.
    pub fn put(&self, mut conn: Conn, max_idle: usize, now: Instant) {
        if self.len.fetch_add(1, Ordering::Relaxed) >= max_idle {
            self.len.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        conn.last_used = now;
        self.idle.push(conn);
    }

    /// Closes connections idle longer than `idle_timeout` or closed by the
    /// upstream; keeps the others.
    pub fn sweep(&self, idle_timeout: Duration) {
        let now = Instant::now();
        for _ in 0..self.len() {
            let Some(mut conn) = self.idle.pop() else {
                break;
            };
            let fresh = now.saturating_duration_since(conn.last_used) < idle_timeout;
            if fresh && conn.is_reusable() {
                // Back at the end, keeping when it was last used.
                self.idle.push(conn);
            } else {
                self.len.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Connections kept right now.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
