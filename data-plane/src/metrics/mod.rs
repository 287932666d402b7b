//! The data plane's metrics: lock-free on the request path, rendered on
//! scrape.
//!
//! Per-network request counters ([`RequestCounters`]) and per-upstream
//! latency histograms live in the routing table, carried across snapshots so
//! they never reset; process-wide values live in [`Metrics`]. `/metrics`
//! renders both ([`render`]).

mod render;
mod requests;
mod resilience;

use std::sync::atomic::{AtomicBool, AtomicU64};

pub use render::render;
pub use requests::{MethodSlot, OTHER_METHOD, RequestCounters};
pub use resilience::NetworkStats;

/// Process-wide counters and gauges of one data plane.
#[derive(Debug)]
pub struct Metrics {
    /// Requests for networks the table does not know (label `network=""`
    /// is never taken from the client's path, which is unbounded).
    pub unrouted: RequestCounters,
    /// 1 while the snapshot stream to the control plane is open.
    pub control_plane_connected: AtomicBool,
    /// Snapshots validated and applied.
    pub snapshots_applied: AtomicU64,
    /// Snapshots rejected (NACKed).
    pub snapshots_rejected: AtomicU64,
    /// Applied snapshots that could not be written to the state dir.
    pub persist_failures: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            unrouted: RequestCounters::new(&[]),
            control_plane_connected: AtomicBool::new(false),
            snapshots_applied: AtomicU64::new(0),
            snapshots_rejected: AtomicU64::new(0),
            persist_failures: AtomicU64::new(0),
        }
    }
}
