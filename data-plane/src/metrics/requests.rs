//! Request counters by method and status, pre-allocated per network.
//!
//! A network's counters are one flat array of atomics indexed by
//! (method slot, status slot); finding a slot is a binary search over a
//! fixed, sorted method list, so counting never locks or allocates. The
//! counters live in an `Arc` that the routing table carries from snapshot to
//! snapshot (keyed by network id), so a new snapshot does not reset them.

use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;
use meridian_common::metrics::TextEncoder;

/// Status labels with their own counter; the rest count as `other`.
const STATUSES: [u16; 13] = [
    200, 204, 400, 403, 404, 405, 413, 429, 500, 502, 503, 504, 0,
];

/// Label of the method slot for methods not in the list (and for requests
/// whose method could not be read).
pub const OTHER_METHOD: &str = "other";

/// Index of a method's counters within one [`RequestCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodSlot(usize);

/// Requests of one network by method and HTTP status.
#[derive(Debug)]
pub struct RequestCounters {
    /// Sorted; slot `methods.len()` is [`OTHER_METHOD`].
    methods: Box<[&'static str]>,
    counts: Box<[AtomicU64]>,
}

impl RequestCounters {
    /// Counters with one slot per method in `methods` plus `other`.
    pub fn new(methods: &[&'static str]) -> Self {
        let mut sorted: Vec<&'static str> = methods.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let cells = (sorted.len() + 1) * STATUSES.len();
        Self {
            methods: sorted.into_boxed_slice(),
            counts: (0..cells).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The slot counting `method` (`other` when it has no label of its own).
    pub fn slot(&self, method: &str) -> MethodSlot {
        MethodSlot(
            self.methods
                .binary_search(&method)
                .unwrap_or(self.methods.len()),
        )
    }

    /// The `other` slot.
    pub fn other(&self) -> MethodSlot {
        MethodSlot(self.methods.len())
    }

    /// Counts one request of `slot` answered with `status`.
    pub fn record(&self, slot: MethodSlot, status: StatusCode) {
        let s = STATUSES
            .iter()
            .position(|s| *s == status.as_u16())
            .unwrap_or(STATUSES.len() - 1);
        if let Some(cell) = self.counts.get(slot.0 * STATUSES.len() + s) {
            cell.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Count of (`method`, `status`), for tests and the admin view.
    pub fn get(&self, method: &str, status: StatusCode) -> u64 {
        let slot = self.slot(method);
        let s = STATUSES
            .iter()
            .position(|s| *s == status.as_u16())
            .unwrap_or(STATUSES.len() - 1);
        self.counts
            .get(slot.0 * STATUSES.len() + s)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Writes the non-zero counters as `meridian_requests_total` samples.
    pub fn render(&self, network: &str, out: &mut TextEncoder) {
        for (i, cell) in self.counts.iter().enumerate() {
            let n = cell.load(Ordering::Relaxed);
            if n == 0 {
                continue;
            }
            let method = self
                .methods
                .get(i / STATUSES.len())
                .copied()
                .unwrap_or(OTHER_METHOD);
            let status = STATUSES[i % STATUSES.len()];
            let status_label = if status == 0 {
                "other".to_owned()
            } else {
                status.to_string()
            };
            out.sample(
                "meridian_requests_total",
                &[
                    ("network", network),
                    ("method", method),
                    ("status", &status_label),
                ],
                n,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_known_methods_and_folds_the_rest_into_other() {
        let c = RequestCounters::new(&["eth_call", "eth_blockNumber"]);
        c.record(c.slot("eth_call"), StatusCode::OK);
        c.record(c.slot("eth_call"), StatusCode::OK);
        c.record(c.slot("made_up"), StatusCode::OK);
        c.record(c.slot("eth_blockNumber"), StatusCode::IM_A_TEAPOT);
        assert_eq!(c.get("eth_call", StatusCode::OK), 2);
        assert_eq!(c.get("whatever", StatusCode::OK), 1);
        let mut out = TextEncoder::new();
        c.render("eth", &mut out);
        let text = out.finish();
        assert!(
            text.contains(
                "meridian_requests_total{network=\"eth\",method=\"eth_call\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "meridian_requests_total{network=\"eth\",method=\"other\",status=\"200\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("method=\"eth_blockNumber\",status=\"other\"} 1"),
            "{text}"
        );
    }
}
