//! Per-network counters of what the request path did to stay up: retries,
//! hedges fired and won, queue refusals, and how long requests queued.
//!
//! Plain atomics in an `Arc` carried across snapshots by network id, like
//! the request counters. Ejections and queue depths live with each upstream
//! (`balance::UpstreamRuntime`) and are rendered from there.

use std::sync::atomic::{AtomicU64, Ordering};

use meridian_common::metrics::{Histogram, TextEncoder};

/// Resilience counters of one network.
#[derive(Debug)]
pub struct NetworkStats {
    /// Tries after the first one of a request (hedges not included).
    pub retries: AtomicU64,
    /// Backup tries sent because the first was slow.
    pub hedges_fired: AtomicU64,
    /// Backup tries whose answer was the one used.
    pub hedges_won: AtomicU64,
    /// Requests refused because a queue was full or its wait ran out.
    pub queue_rejected: AtomicU64,
    /// How long requests that had to queue waited for a slot.
    pub queue_wait: Histogram,
}

impl Default for NetworkStats {
    fn default() -> Self {
        Self {
            retries: AtomicU64::new(0),
            hedges_fired: AtomicU64::new(0),
            hedges_won: AtomicU64::new(0),
            queue_rejected: AtomicU64::new(0),
            queue_wait: Histogram::latency(),
        }
    }
}

impl NetworkStats {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes the counters of each `(network, stats)` pair.
    pub fn render<'a>(all: &[(&'a str, &'a NetworkStats)], out: &mut TextEncoder) {
        type Pick = fn(&NetworkStats) -> &AtomicU64;
        let counters: [(&str, &str, Pick); 4] = [
            (
                "meridian_retries_total",
                "Tries after the first of a request, on another upstream (hedges not included).",
                |s| &s.retries,
            ),
            (
                "meridian_hedges_fired_total",
                "Backup tries sent because a read had no answer after the hedge delay.",
                |s| &s.hedges_fired,
            ),
            (
                "meridian_hedges_won_total",
                "Backup tries whose answer was the one returned.",
                |s| &s.hedges_won,
            ),
            (
                "meridian_queue_rejected_total",
                "Requests refused with 503 because a priority queue was full or the wait ran out.",
                |s| &s.queue_rejected,
            ),
        ];
        for (name, help, pick) in counters {
            out.family(name, "counter", help);
            for (network, stats) in all {
                out.sample(
                    name,
                    &[("network", network)],
                    pick(stats).load(Ordering::Relaxed),
                );
            }
        }
        out.family(
            "meridian_queue_wait_seconds",
            "histogram",
            "Time requests waited in a priority queue for an upstream slot.",
        );
        for (network, stats) in all {
            out.histogram(
                "meridian_queue_wait_seconds",
                &[("network", network)],
                &stats.queue_wait,
            );
        }
    }
}
