//! Lock-free metric primitives and the Prometheus text format.
//!
//! Request paths only touch atomics: counters and histogram buckets are
//! pre-allocated, labels are fixed when a metric is created. Rendering walks
//! them on scrape. This is deliberately smaller than a metrics framework: the
//! hot path must never take a lock or allocate to count.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Latency bucket upper bounds in seconds, from 100 µs to 10 s.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

/// A fixed-bucket histogram of durations, updated with relaxed atomics.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds in microseconds, parallel to `counts` (last is +Inf).
    bounds_us: Vec<u64>,
    counts: Vec<AtomicU64>,
    sum_us: AtomicU64,
}

impl Histogram {
    /// A histogram with `bounds` in seconds (ascending).
    pub fn new(bounds: &[f64]) -> Self {
        let bounds_us: Vec<u64> = bounds.iter().map(|b| (b * 1e6) as u64).collect();
        let counts = (0..=bounds_us.len()).map(|_| AtomicU64::new(0)).collect();
        Self {
            bounds_us,
            counts,
            sum_us: AtomicU64::new(0),
        }
    }

    /// A histogram with [`LATENCY_BUCKETS`].
    pub fn latency() -> Self {
        Self::new(&LATENCY_BUCKETS)
    }

    /// Records one observation of `us` microseconds.
    pub fn observe_us(&self, us: u64) {
        let i = self.bounds_us.partition_point(|b| *b < us);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Total observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// Writes metrics in the Prometheus text exposition format (0.0.4).
#[derive(Debug, Default)]
pub struct TextEncoder {
    out: String,
}

impl TextEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// `# HELP` and `# TYPE` lines; call once per metric family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// Every line of a histogram (buckets, sum, count) under `name`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0u64;
        for (i, count) in h.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = match h.bounds_us.get(i) {
                Some(b) => format!("{}", *b as f64 / 1e6),
                None => "+Inf".to_owned(),
            };
            let _ = write!(self.out, "{name}_bucket");
            self.labels(labels, Some(&le));
            let _ = writeln!(self.out, " {cumulative}");
        }
        let sum = h.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, cumulative);
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let mut first = true;
        for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
            if !first {
                self.out.push(',');
            }
            first = false;
            let _ = write!(self.out, "{k}=\"");
            for c in v.chars() {
                match c {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        self.out.push('}');
    }

    /// The rendered text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// The content type of [`TextEncoder`] output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::new(&[0.001, 0.01]);
        h.observe_us(500);
        h.observe_us(5_000);
        h.observe_us(50_000);
        let mut e = TextEncoder::new();
        e.family("lat", "histogram", "latency");
        e.histogram("lat", &[("upstream", "a\"b")], &h);
        let text = e.finish();
        assert!(
            text.contains("lat_bucket{upstream=\"a\\\"b\",le=\"0.001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_bucket{upstream=\"a\\\"b\",le=\"0.01\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_bucket{upstream=\"a\\\"b\",le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_count{upstream=\"a\\\"b\"} 3\n"),
            "{text}"
        );
        assert_eq!(h.count(), 3);
    }
}
