//! The state one data plane keeps per upstream between requests.
//!
//! Built once per (network, upstream id) and carried from snapshot to
//! snapshot by the routing table, like the latency histograms: a snapshot
//! that only changes scores must not forgive an ejection, empty a queue or
//! reset the quantiles hedging relies on.

use std::sync::Arc;

use super::concurrency::Limiter;
use super::ejection::Ejection;
use super::latency::LatencyQuantiles;

/// Ejection, concurrency and latency state of one upstream.
#[derive(Debug)]
pub struct UpstreamRuntime {
    pub ejection: Ejection,
    pub limiter: Arc<Limiter>,
    pub quantiles: LatencyQuantiles,
}

impl UpstreamRuntime {
    /// Fresh state for an upstream allowing `max_concurrency` tries.
    pub fn new(max_concurrency: u32) -> Self {
        Self {
            ejection: Ejection::default(),
            limiter: Arc::new(Limiter::new(max_concurrency)),
            quantiles: LatencyQuantiles::default(),
        }
    }
}
