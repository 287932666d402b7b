//! The breaker in front of the shared tier: after a run of failures
//! (errors, timeouts) the data plane stops asking Redis for a cool-down,
//! then lets one call through; its success closes the breaker, its failure
//! opens it again. Lock free: a state byte, a failure count and the instant
//! the cool-down ends, as atomics. Each transition is made by exactly one
//! caller (a compare-and-swap), which is the one that logs it.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BreakerState {
    /// Redis is asked.
    Closed = 0,
    /// Redis is not asked until the cool-down ends.
    Open = 1,
    /// One trial call is out; the others do not ask.
    HalfOpen = 2,
}

impl BreakerState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }

    /// The state's name, for logs and the admin view.
    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

/// A breaker opening after `threshold` consecutive failures for `cooldown`.
#[derive(Debug)]
pub struct Breaker {
    state: AtomicU8,
    failures: AtomicU32,
    /// Milliseconds after `epoch` when an open breaker lets a trial through.
    reopen_at_ms: AtomicU64,
    opened: AtomicU64,
    epoch: Instant,
    threshold: u32,
    cooldown: Duration,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            state: AtomicU8::new(BreakerState::Closed as u8),
            failures: AtomicU32::new(0),
            reopen_at_ms: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            epoch: Instant::now(),
            threshold: threshold.max(1),
            cooldown,
        }
    }

    /// Where it stands now.
    pub fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Times it opened.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn swap(&self, from: BreakerState, to: BreakerState) -> bool {
        self.state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Whether a call may ask Redis now. Past an open breaker's cool-down
    /// the first caller is let through as the trial. A trial that never
    /// reports (its request was dropped mid-call: a client hung up) does
    /// not hold the breaker half-open for ever: after another cool-down
    /// the next caller is the trial.
    pub fn allow(&self) -> bool {
        match self.state() {
            BreakerState::Closed => true,
            BreakerState::HalfOpen => self.claim_trial(),
            BreakerState::Open => {
                self.now_ms() >= self.reopen_at_ms.load(Ordering::Acquire)
                    && self.swap(BreakerState::Open, BreakerState::HalfOpen)
                    && {
                        self.reopen_at_ms
                            .store(self.after_cooldown(), Ordering::Release);
                        tracing::info!(
                            "shared cache (redis): cool-down over, one trial call let through"
                        );
                        true
                    }
            }
        }
    }

    /// A new trial once the last one has been out for a cool-down.
    fn claim_trial(&self) -> bool {
        let due = self.reopen_at_ms.load(Ordering::Acquire);
        self.now_ms() >= due
            && self
                .reopen_at_ms
                .compare_exchange(
                    due,
                    self.after_cooldown(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    fn after_cooldown(&self) -> u64 {
        self.now_ms()
            .saturating_add(u64::try_from(self.cooldown.as_millis()).unwrap_or(u64::MAX))
    }

    /// A call that reached Redis and got an answer (a miss is one).
    pub fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
        let was = self.state();
        if was != BreakerState::Closed && self.swap(was, BreakerState::Closed) {
            tracing::info!("shared cache (redis) answers again: breaker closed");
        }
    }

    /// A call that failed (an error, a timeout); `why` is logged when this
    /// failure opens the breaker.
    pub fn failure(&self, why: &dyn std::fmt::Display) {
        // The deadline is stored before the swap so that whoever sees the
        // breaker open also sees when it ends (a loser of the swap only
        // moves it by the time between the two calls); it is counted once,
        // by the winner.
        let open_until = || {
            self.reopen_at_ms
                .store(self.after_cooldown(), Ordering::Release);
        };
        match self.state() {
            BreakerState::Open => {}
            BreakerState::HalfOpen => {
                open_until();
                if self.swap(BreakerState::HalfOpen, BreakerState::Open) {
                    self.opened.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        error = %why,
                        cooldown_ms = self.cooldown.as_millis() as u64,
                        "shared cache (redis) trial call failed: breaker open again"
                    );
                }
            }
            BreakerState::Closed => {
                let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures >= self.threshold {
                    open_until();
                    if self.swap(BreakerState::Closed, BreakerState::Open) {
                        self.opened.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            error = %why,
                            failures,
                            cooldown_ms = self.cooldown.as_millis() as u64,
                            "shared cache (redis) failing: breaker open, serving from memory and upstreams"
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_lets_one_trial_through_and_closes_on_success() {
        let b = Breaker::new(3, Duration::ZERO);
        b.failure(&"x");
        b.failure(&"x");
        assert_eq!(b.state(), BreakerState::Closed);
        b.success();
        b.failure(&"x");
        b.failure(&"x");
        assert_eq!(b.state(), BreakerState::Closed, "a success resets the run");
        b.failure(&"x");
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.opened(), 1);
        // A zero cool-down: the next caller is the trial.
        assert!(b.allow());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.failure(&"x");
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.opened(), 2);
        assert!(b.allow());
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow());
    }

    #[test]
    fn a_trial_that_never_reports_is_given_again_after_a_cool_down() {
        let b = Breaker::new(1, Duration::ZERO);
        b.failure(&"x");
        assert!(b.allow(), "the trial");
        // Its request was dropped: no success, no failure. With a zero
        // cool-down the next caller is the trial again at once.
        assert!(b.allow());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);

        // With a trial out and its cool-down not over, the others wait.
        let slow = Breaker::new(1, Duration::from_secs(3_600));
        slow.state
            .store(BreakerState::HalfOpen as u8, Ordering::Release);
        slow.reopen_at_ms
            .store(slow.after_cooldown(), Ordering::Release);
        assert!(!slow.allow());
        slow.failure(&"x");
        assert_eq!(slow.state(), BreakerState::Open);
        assert!(!slow.allow(), "open: cooling down");
    }

    #[test]
    fn an_open_breaker_refuses_until_its_cool_down_ends() {
        let b = Breaker::new(1, Duration::from_secs(3_600));
        b.failure(&"x");
        assert!(!b.allow());
        assert!(!b.allow());
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn failures_racing_past_the_threshold_open_it_once() {
        let b = std::sync::Arc::new(Breaker::new(2, Duration::from_secs(3_600)));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    for _ in 0..1_000 {
                        b.failure(&"x");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.opened(), 1, "one transition, one count");
    }
}
