//! A network's finalized height across probe rounds.
//!
//! What a round says ([`Finality`]) is not taken as it is: a finalized
//! height never goes backwards (what was final stays final, and data
//! planes cache by it), so a guess must not get in ahead of the nodes'
//! own reports. The depth guess (head − `finality_depth`) is used only for
//! networks whose nodes have never reported one, and only after
//! [`GUESS_AFTER_ROUNDS`] rounds without a report, so a slow first
//! answer does not lock a guess in above real finality.

use crate::health::judge::Finality;

/// Rounds without any report before the depth guess is used.
pub const GUESS_AFTER_ROUNDS: u32 = 3;

/// The finalized height of one network and how it was learned.
#[derive(Debug, Default)]
pub struct FinalityState {
    height: Option<u64>,
    ever_reported: bool,
    rounds_unreported: u32,
    /// Set while rounds keep saying less than `height`, so that is logged
    /// once per episode, not every round.
    backwards: bool,
}

impl FinalityState {
    /// The finalized height, if known.
    pub fn height(&self) -> Option<u64> {
        self.height
    }

    /// Forgets everything: the network is another chain now (its chain id
    /// changed).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Takes one round's verdict.
    pub fn observe(&mut self, network: &str, round: Option<Finality>) {
        let candidate = match round {
            Some(Finality::Reported(h)) => {
                self.ever_reported = true;
                self.rounds_unreported = 0;
                h
            }
            Some(Finality::Depth(h)) => {
                self.rounds_unreported = self.rounds_unreported.saturating_add(1);
                if self.ever_reported || self.rounds_unreported < GUESS_AFTER_ROUNDS {
                    return;
                }
                h
            }
            None => return,
        };
        match self.height {
            Some(held) if candidate < held => {
                if !std::mem::replace(&mut self.backwards, true) {
                    tracing::warn!(
                        network,
                        finalized = candidate,
                        held,
                        "ignoring a finalized height that would go backwards"
                    );
                }
            }
            _ => {
                self.backwards = false;
                self.height = Some(candidate);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_rise_a_guess_waits_and_never_overrides_reports() {
        let mut f = FinalityState::default();
        f.observe("n", Some(Finality::Depth(100)));
        f.observe("n", Some(Finality::Depth(101)));
        assert_eq!(
            f.height(),
            None,
            "no guess before {GUESS_AFTER_ROUNDS} rounds"
        );
        f.observe("n", Some(Finality::Reported(80)));
        assert_eq!(f.height(), Some(80), "a report before the guess wins");
        for _ in 0..5 {
            f.observe("n", Some(Finality::Depth(200)));
        }
        assert_eq!(f.height(), Some(80), "once reported, never guessed");
        f.observe("n", Some(Finality::Reported(70)));
        assert_eq!(f.height(), Some(80), "never backwards");
        f.observe("n", None);
        f.observe("n", Some(Finality::Reported(90)));
        assert_eq!(f.height(), Some(90));

        let mut g = FinalityState::default();
        for h in [10, 11, 12] {
            g.observe("n", Some(Finality::Depth(h)));
        }
        assert_eq!(
            g.height(),
            Some(12),
            "a chain that never reports is guessed"
        );
        g.reset();
        assert_eq!(g.height(), None);
    }
}
