//! State flips only after enough consecutive evidence.
//!
//! An upstream enters rotation after `healthy_after` consecutive passing
//! probes and leaves it after `unhealthy_after` consecutive failing or
//! lagging ones; one bad probe does not make it flap. A new upstream starts
//! Failing ("not yet proven healthy") and must earn its way in.
//!
//! Two cases act at once, because they move nothing into rotation:
//! - a node serving another chain is quarantined on the first such answer
//!   (routing even one more request to it would give clients wrong data);
//! - an upstream already out of rotation is relabelled by each bad
//!   observation (lagging ↔ failing ↔ quarantined), so operators see what
//!   is wrong now.
//!
//! The reason only changes when the state does, so a snapshot does not
//! churn with every slightly different error text.

use meridian_common::snapshot::UpstreamState;

/// What one probe round says about one upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// Answered, on the right chain, close enough to the reference height.
    Pass,
    /// Answered, but more than the allowed blocks behind.
    Lagging { lag: u64, max_lag: u64 },
    /// Error, timeout or malformed answer.
    Failing(String),
    /// Answered with another chain id than the network's.
    WrongChain { expected: String, actual: String },
}

impl Observation {
    /// The state this observation argues for, and its reason.
    fn verdict(&self) -> (UpstreamState, String) {
        match self {
            Self::Pass => (UpstreamState::Healthy, String::new()),
            Self::Lagging { max_lag, .. } => (
                UpstreamState::Lagging,
                format!("more than {max_lag} blocks behind the reference height"),
            ),
            Self::Failing(why) => (UpstreamState::Failing, why.clone()),
            Self::WrongChain { expected, actual } => (
                UpstreamState::Quarantined,
                format!("serves chain id {actual}, network expects {expected}"),
            ),
        }
    }
}

/// Reason of an upstream that has not passed enough probes yet.
pub const NOT_YET_PROVEN: &str = "not yet proven healthy";

/// The state of one upstream and the streaks that move it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hysteresis {
    state: UpstreamState,
    reason: String,
    passes: u32,
    failures: u32,
}

impl Hysteresis {
    /// A new upstream: failing until proven healthy.
    pub fn unproven() -> Self {
        Self::seeded(UpstreamState::Failing, NOT_YET_PROVEN.to_owned())
    }

    /// Resumes from a known state (e.g. the last published snapshot after a
    /// restart), with empty streaks.
    pub fn seeded(state: UpstreamState, reason: String) -> Self {
        Self {
            state,
            reason,
            passes: 0,
            failures: 0,
        }
    }

    pub fn state(&self) -> UpstreamState {
        self.state
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Records one observation; returns whether the state changed.
    pub fn observe(&mut self, obs: &Observation, healthy_after: u32, unhealthy_after: u32) -> bool {
        let (wanted, reason) = obs.verdict();
        if wanted == UpstreamState::Healthy {
            self.failures = 0;
            self.passes = self.passes.saturating_add(1);
            if self.state != UpstreamState::Healthy && self.passes >= healthy_after {
                return self.set(UpstreamState::Healthy, reason);
            }
            return false;
        }
        self.passes = 0;
        self.failures = self.failures.saturating_add(1);
        let act_now = wanted == UpstreamState::Quarantined
            || self.state != UpstreamState::Healthy
            || self.failures >= unhealthy_after;
        if act_now && wanted != self.state {
            return self.set(wanted, reason);
        }
        false
    }

    fn set(&mut self, state: UpstreamState, reason: String) -> bool {
        self.state = state;
        self.reason = reason;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: Observation = Observation::Lagging {
        lag: 20,
        max_lag: 10,
    };

    fn fail() -> Observation {
        Observation::Failing("timeout".into())
    }

    #[test]
    fn new_upstream_needs_healthy_after_passes() {
        let mut h = Hysteresis::unproven();
        assert_eq!(h.state(), UpstreamState::Failing);
        assert_eq!(h.reason(), NOT_YET_PROVEN);
        assert!(!h.observe(&Observation::Pass, 3, 2));
        assert!(!h.observe(&Observation::Pass, 3, 2));
        assert_eq!(h.state(), UpstreamState::Failing);
        assert!(h.observe(&Observation::Pass, 3, 2));
        assert_eq!(h.state(), UpstreamState::Healthy);
        assert_eq!(h.reason(), "");
    }

    #[test]
    fn healthy_leaves_only_after_unhealthy_after_bad_results() {
        let mut h = Hysteresis::seeded(UpstreamState::Healthy, String::new());
        assert!(!h.observe(&LAG, 3, 2));
        assert_eq!(h.state(), UpstreamState::Healthy);
        assert!(h.observe(&LAG, 3, 2));
        assert_eq!(h.state(), UpstreamState::Lagging);
        assert!(h.reason().contains("10 blocks"), "{}", h.reason());
    }

    #[test]
    fn a_pass_resets_the_bad_streak_and_vice_versa() {
        let mut h = Hysteresis::seeded(UpstreamState::Healthy, String::new());
        for _ in 0..5 {
            assert!(!h.observe(&fail(), 3, 2));
            assert!(!h.observe(&Observation::Pass, 3, 2));
        }
        assert_eq!(h.state(), UpstreamState::Healthy);

        let mut h = Hysteresis::unproven();
        for _ in 0..5 {
            h.observe(&Observation::Pass, 3, 2);
            h.observe(&Observation::Pass, 3, 2);
            h.observe(&fail(), 3, 2);
        }
        assert_eq!(h.state(), UpstreamState::Failing);
    }

    #[test]
    fn mixed_bad_results_count_together_and_the_last_one_names_the_state() {
        let mut h = Hysteresis::seeded(UpstreamState::Healthy, String::new());
        assert!(!h.observe(&LAG, 3, 2));
        assert!(h.observe(&fail(), 3, 2));
        assert_eq!(h.state(), UpstreamState::Failing);
        assert_eq!(h.reason(), "timeout");
    }

    #[test]
    fn out_of_rotation_is_relabelled_at_once_but_reason_is_stable() {
        let mut h = Hysteresis::unproven();
        assert!(h.observe(&LAG, 3, 2));
        assert_eq!(h.state(), UpstreamState::Lagging);
        assert!(!h.observe(&LAG, 3, 2));
        assert!(h.observe(&fail(), 3, 2));
        assert!(!h.observe(&Observation::Failing("other text".into()), 3, 2));
        assert_eq!(h.reason(), "timeout");
    }

    #[test]
    fn wrong_chain_quarantines_at_once_and_recovery_needs_passes() {
        let mut h = Hysteresis::seeded(UpstreamState::Healthy, String::new());
        let wrong = Observation::WrongChain {
            expected: "1".into(),
            actual: "5".into(),
        };
        assert!(h.observe(&wrong, 3, 2));
        assert_eq!(h.state(), UpstreamState::Quarantined);
        assert_eq!(h.reason(), "serves chain id 5, network expects 1");
        h.observe(&Observation::Pass, 3, 2);
        h.observe(&Observation::Pass, 3, 2);
        assert_eq!(h.state(), UpstreamState::Quarantined);
        assert!(h.observe(&Observation::Pass, 3, 2));
        assert_eq!(h.state(), UpstreamState::Healthy);
    }

    #[test]
    fn thresholds_of_one_flip_on_every_change() {
        let mut h = Hysteresis::unproven();
        assert!(h.observe(&Observation::Pass, 1, 1));
        assert!(h.observe(&fail(), 1, 1));
        assert!(h.observe(&Observation::Pass, 1, 1));
    }
}
