//! Passive outlier ejection: what one data plane concludes from its own tries.
//!
//! `eject_after_failures` consecutive failed tries eject an upstream from
//! this data plane's selection for a cool-down (30 s by default). When the
//! cool-down is over the upstream is half-open: exactly one request (the
//! trial) is let through. A good trial ends the ejection; a failed one ejects
//! again for twice as long, up to 5 minutes. The control plane's view is
//! never touched; another data plane may still route to the same upstream.
//!
//! All state is a handful of atomics: selection reads it without a lock, and
//! the few writers (verdicts of finished tries) use compare-and-swap where
//! two of them could race (two failures crossing the threshold together
//! eject once; two requests seeing the cool-down end elect one trial).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Cool-down bounds (from the data plane's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EjectionTimes {
    /// First cool-down.
    pub base: Duration,
    /// Longest cool-down; doubling stops here.
    pub max: Duration,
}

impl Default for EjectionTimes {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(30),
            max: Duration::from_secs(300),
        }
    }
}

impl EjectionTimes {
    /// The cool-down of the `level`-th ejection in a row (0-based).
    pub fn cooldown(&self, level: u32) -> Duration {
        let factor = 1u32.checked_shl(level.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// Whether selection may send a try to an upstream now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Not ejected.
    Open,
    /// The cool-down is over and no trial is running: the next try is the
    /// trial (claim it with [`Ejection::claim_trial`]).
    Trial,
    /// Ejected (cooling down, or its trial is running).
    Ejected,
}

/// What kind of try a verdict is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryKind {
    /// An ordinary try on an admitted upstream.
    Normal,
    /// The half-open trial.
    Trial,
    /// A last-resort try on an ejected upstream (nothing else was left).
    LastResort,
}

/// The ejection state of one upstream in one data plane.
#[derive(Debug, Default)]
pub struct Ejection {
    /// Failed tries in a row.
    failures: AtomicU32,
    /// When the cool-down ends ([`super::clock::now_ms`]); 0: not ejected.
    until_ms: AtomicU64,
    /// Ejections in a row without a recovery (the doubling exponent).
    level: AtomicU32,
    /// A half-open trial is running.
    trial: AtomicBool,
    /// Ejections so far (metric).
    total: AtomicU64,
}

impl Ejection {
    /// May a try go to this upstream now? `now_ms` is asked only for an
    /// ejected upstream (the common case reads no clock).
    pub fn admission(&self, now_ms: impl FnOnce() -> u64) -> Admission {
        let until = self.until_ms.load(Ordering::Acquire);
        if until == 0 {
            Admission::Open
        } else if now_ms() < until || self.trial.load(Ordering::Acquire) {
            Admission::Ejected
        } else {
            Admission::Trial
        }
    }

    /// True while ejected (cooling down or on trial).
    pub fn is_ejected(&self) -> bool {
        self.until_ms.load(Ordering::Acquire) != 0
    }

    /// Takes the half-open trial; false when another request got it first.
    pub fn claim_trial(&self) -> bool {
        self.trial
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// A try of `kind` ended without a verdict (cancelled: a hedge lost, the
    /// client left): a trial is handed back so another request can make it.
    pub fn abandon(&self, kind: TryKind) {
        if kind == TryKind::Trial {
            self.trial.store(false, Ordering::Release);
        }
    }

    /// A try of `kind` succeeded. A trial or last-resort success ends the
    /// ejection (and the doubling starts over); an ordinary success that
    /// was sent before the ejection only resets the failure count.
    pub fn success(&self, kind: TryKind) {
        self.failures.store(0, Ordering::Relaxed);
        if kind != TryKind::Normal && self.is_ejected() {
            self.level.store(0, Ordering::Relaxed);
            self.until_ms.store(0, Ordering::Release);
            self.trial.store(false, Ordering::Release);
        }
    }

    /// A try of `kind` failed at `now_ms`; returns true when this failure
    /// ejected the upstream (count it once in metrics).
    ///
    /// Only a failed trial re-ejects an ejected upstream: failures of tries
    /// sent before the ejection (still in flight when it happened) or of
    /// last-resort tries must not double the cool-down again.
    pub fn failure(
        &self,
        kind: TryKind,
        now_ms: u64,
        threshold: u32,
        times: EjectionTimes,
    ) -> bool {
        if kind == TryKind::Trial {
            let level = self.level.fetch_add(1, Ordering::Relaxed);
            self.until_ms.store(
                now_ms.saturating_add(ms(times.cooldown(level))),
                Ordering::Release,
            );
            self.trial.store(false, Ordering::Release);
            self.total.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        let failures = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if failures < threshold.max(1) || self.is_ejected() {
            return false;
        }
        let level = self.level.load(Ordering::Relaxed);
        let until = now_ms.saturating_add(ms(times.cooldown(level)));
        // Several failures can cross the threshold together: one ejects.
        if self
            .until_ms
            .compare_exchange(0, until, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        self.level.fetch_add(1, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Ejections so far.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: EjectionTimes = EjectionTimes {
        base: Duration::from_secs(30),
        max: Duration::from_secs(300),
    };

    #[test]
    fn cooldown_doubles_up_to_the_max() {
        let secs: Vec<u64> = (0..7).map(|l| T.cooldown(l).as_secs()).collect();
        assert_eq!(secs, vec![30, 60, 120, 240, 300, 300, 300]);
        assert_eq!(T.cooldown(u32::MAX).as_secs(), 300);
    }

    #[test]
    fn ejects_after_n_failures_then_one_trial_decides() {
        let e = Ejection::default();
        for _ in 0..4 {
            assert!(!e.failure(TryKind::Normal, 1_000, 5, T));
        }
        assert_eq!(e.admission(|| 1_000), Admission::Open);
        assert!(e.failure(TryKind::Normal, 1_000, 5, T));
        assert_eq!(e.total(), 1);
        assert_eq!(e.admission(|| 1_000), Admission::Ejected);
        assert_eq!(e.admission(|| 30_999), Admission::Ejected);
        // In-flight failures after the ejection do not re-eject.
        assert!(!e.failure(TryKind::Normal, 2_000, 5, T));
        assert_eq!(e.admission(|| 31_000), Admission::Trial);
        assert!(e.claim_trial());
        assert!(!e.claim_trial(), "only one trial at a time");
        assert_eq!(e.admission(|| 31_000), Admission::Ejected);

        // A failed trial ejects for twice as long.
        assert!(e.failure(TryKind::Trial, 31_000, 5, T));
        assert_eq!(e.admission(|| 31_000 + 59_999), Admission::Ejected);
        assert_eq!(e.admission(|| 31_000 + 60_000), Admission::Trial);
        assert_eq!(e.total(), 2);

        // A good trial ends it; the next ejection starts at 30 s again.
        assert!(e.claim_trial());
        e.success(TryKind::Trial);
        assert_eq!(e.admission(|| 0), Admission::Open);
        for _ in 0..5 {
            e.failure(TryKind::Normal, 100_000, 5, T);
        }
        assert_eq!(e.admission(|| 100_000 + 29_999), Admission::Ejected);
        assert_eq!(e.admission(|| 100_000 + 30_000), Admission::Trial);
    }

    #[test]
    fn successes_reset_the_count_and_abandoned_trials_are_handed_back() {
        let e = Ejection::default();
        for _ in 0..4 {
            e.failure(TryKind::Normal, 1, 5, T);
        }
        e.success(TryKind::Normal);
        for _ in 0..4 {
            assert!(!e.failure(TryKind::Normal, 1, 5, T));
        }
        assert!(e.failure(TryKind::Normal, 1, 5, T));
        // An ordinary success while ejected does not lift the ejection.
        e.success(TryKind::Normal);
        assert!(e.is_ejected());
        let later = 1 + 30_000;
        assert!(e.claim_trial());
        e.abandon(TryKind::Trial);
        assert_eq!(e.admission(|| later), Admission::Trial);
        // A last-resort success does.
        e.success(TryKind::LastResort);
        assert!(!e.is_ejected());
    }
}
