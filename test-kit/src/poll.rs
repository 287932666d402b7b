//! Polling for a condition with a generous bound: the only way tests wait.
//!
//! Tests never sleep a fixed time and hope; they state what they wait for,
//! poll it every ~20 ms, and fail with that statement when the bound passes.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`eventually`] re-checks its condition.
pub const POLL_EVERY: Duration = Duration::from_millis(20);

/// Polls `condition` every ~20 ms until it returns true; panics naming
/// `what` if it has not after `timeout`. Returns the time it took.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut condition: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    match try_eventually(timeout, &mut condition).await {
        Ok(took) => took,
        Err(()) => panic!("timed out after {timeout:?} waiting for: {what}"),
    }
}

/// Like [`eventually`], but returns `Err(())` on timeout instead of panicking.
pub async fn try_eventually<F, Fut>(timeout: Duration, mut condition: F) -> Result<Duration, ()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    let deadline = start + timeout;
    loop {
        // Each check is itself bounded, so a condition that hangs (e.g. a
        // request to a dead peer) cannot outlive the deadline.
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(true) = tokio::time::timeout(left.max(POLL_EVERY), condition()).await {
            return Ok(start.elapsed());
        }
        if Instant::now() >= deadline {
            return Err(());
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn returns_once_true() {
        let n = AtomicU32::new(0);
        eventually("three polls", Duration::from_secs(5), || async {
            n.fetch_add(1, Ordering::SeqCst) >= 2
        })
        .await;
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for: never")]
    async fn panics_with_what_on_timeout() {
        eventually("never", Duration::from_millis(100), || async { false }).await;
    }
}
