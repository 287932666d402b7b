//! Observed latency quantiles of one upstream, for hedging.
//!
//! The same buckets as the exported latency histogram, counted with relaxed
//! atomics; a quantile is the upper bound of the bucket it falls in, which
//! is as precise as a hedge delay needs to be. (The exported
//! `meridian_common::metrics::Histogram` keeps its buckets private, hence
//! this small twin.)

use std::sync::atomic::{AtomicU64, Ordering};

use meridian_common::metrics::LATENCY_BUCKETS;

/// Fewest observations before a quantile is trusted.
pub const MIN_SAMPLES: u64 = 20;

/// Bucket counts of one upstream's try latencies.
#[derive(Debug)]
pub struct LatencyQuantiles {
    bounds_us: [u64; LATENCY_BUCKETS.len()],
    /// One more than `bounds_us`: the last counts everything above.
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
}

impl Default for LatencyQuantiles {
    fn default() -> Self {
        Self {
            bounds_us: LATENCY_BUCKETS.map(|s| (s * 1e6) as u64),
            counts: Default::default(),
        }
    }
}

impl LatencyQuantiles {
    /// Records one try of `us` microseconds.
    pub fn observe_us(&self, us: u64) {
        let i = self.bounds_us.partition_point(|b| *b < us);
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The `q` quantile (0..=1) in microseconds, as a bucket upper bound;
    /// `None` before [`MIN_SAMPLES`] observations or when it falls above
    /// the last bound.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        // Two passes over the atomics instead of a copy: concurrent
        // observations may shift the answer by a bucket, which is harmless.
        let total: u64 = self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        if total < MIN_SAMPLES {
            return None;
        }
        let rank = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c.load(Ordering::Relaxed);
            if seen >= rank {
                return self.bounds_us.get(i).copied();
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p95_is_the_bucket_bound() {
        let q = LatencyQuantiles::default();
        for _ in 0..19 {
            q.observe_us(3_000);
        }
        assert_eq!(q.quantile_us(0.95), None, "too few samples");
        q.observe_us(3_000);
        assert_eq!(q.quantile_us(0.95), Some(5_000));
        for _ in 0..20 {
            q.observe_us(200_000);
        }
        // 40 samples: rank 38 falls among the slow ones.
        assert_eq!(q.quantile_us(0.95), Some(250_000));
        assert_eq!(q.quantile_us(0.5), Some(5_000));
    }
}
