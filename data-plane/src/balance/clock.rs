//! A cheap monotonic clock in milliseconds, so that time fits in an atomic.

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

/// Milliseconds since this process first asked, plus one (so 0 never names
/// a moment and can mean "unset" in an atomic).
pub fn now_ms() -> u64 {
    let start = START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_zero_and_never_backwards() {
        let a = now_ms();
        let b = now_ms();
        assert!(a >= 1 && b >= a);
    }
}
