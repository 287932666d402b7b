//! The 0–100 score data planes weight their choice by.
//!
//! Half of it comes from lag, half from probe latency. Latency counts on a
//! log scale: 5 ms and 10 ms differ as much as 500 ms and 1 s, which matches
//! how much a client notices.

/// Score of an upstream `lag` blocks behind (allowed: `max_lag`) whose probe
/// latency EWMA is `latency_us`. 100 is a perfect node.
pub fn score(lag: u64, max_lag: u64, latency_us: u64) -> u32 {
    100 - lag_penalty(lag, max_lag) - latency_penalty(latency_us)
}

/// 0 for no lag, growing linearly to 50 at `max_lag + 1` blocks.
fn lag_penalty(lag: u64, max_lag: u64) -> u32 {
    let p = lag.saturating_mul(50) / max_lag.saturating_add(1);
    u32::try_from(p.min(50)).unwrap_or(50)
}

/// 0 up to 5 ms, then 6 per doubling, at most 50 (reached near 1.6 s).
fn latency_penalty(latency_us: u64) -> u32 {
    const FREE_US: u64 = 5_000;
    if latency_us <= FREE_US {
        return 0;
    }
    let doublings = (latency_us as f64 / FREE_US as f64).log2();
    (doublings * 6.0).round().clamp(0.0, 50.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_node_scores_100() {
        assert_eq!(score(0, 10, 800), 100);
    }

    #[test]
    fn lag_and_latency_lower_the_score_monotonically() {
        let mut last = 101;
        for lag in 0..=12 {
            let s = score(lag, 10, 1_000);
            assert!(s < last || s == 50, "lag {lag}: {s}");
            last = s;
        }
        assert_eq!(score(11, 10, 1_000), 50);
        assert_eq!(score(1_000, 10, 1_000), 50);
        let mut last = 101;
        for ms in [5u64, 10, 20, 40, 80, 160, 320, 640, 1_280] {
            let s = score(0, 10, ms * 1_000);
            assert!(s < last, "{ms} ms: {s}");
            last = s;
        }
        assert_eq!(score(0, 10, 60_000_000), 50);
    }

    #[test]
    fn never_below_zero_nor_above_100() {
        for lag in [0, 1, 10, u64::MAX] {
            for lat in [0, 1, 10_000_000, u64::MAX] {
                for max in [0, 10, u64::MAX] {
                    let s = score(lag, max, lat);
                    assert!(s <= 100, "{lag} {max} {lat}");
                }
            }
        }
        assert_eq!(score(1, 0, 0), 50);
        assert_eq!(score(u64::MAX, 0, u64::MAX), 0);
    }
}
