//! Judging one probe round of a network: reference height, expected chain
//! id, and one [`Observation`] per upstream.
//!
//! The reference height is the highest of the leader's height and the
//! heights of upstreams that answered on the right chain: a node of another
//! chain must neither pass nor make every honest node look behind.
//!
//! The finalized height is the lower median of the finalized heights the
//! leader and those upstreams report (each at most its own head, else it
//! is ignored), once more than half of them report one, so no minority of
//! nodes decides it; when none reports one, the round offers the reference
//! height minus the network's finality depth as a guess (which the
//! inventory takes only for chains that never report, see
//! `inventory::finality`). It never exceeds the reference height.
//!
//! The expected chain id is the configured one; else the leader's answer;
//! else the one learned earlier; else a strict majority of the answering
//! upstreams (a tie decides nothing, so no one is quarantined on a coin flip).

use std::collections::HashMap;

use super::{Observation, ProbeAnswer, ProbeOutcome};

/// One round of probe results.
#[derive(Debug, Clone, Copy)]
pub struct Round<'a> {
    /// `chain_id` from the config file (canonical), if set.
    pub configured_chain_id: Option<&'a str>,
    /// Chain id learned in an earlier round, if any.
    pub learned_chain_id: Option<&'a str>,
    /// The leader's probe, if the network has a leader.
    pub leader: Option<&'a ProbeOutcome>,
    /// Every upstream's probe, in any order.
    pub upstreams: &'a [ProbeOutcome],
    /// Lag above which an upstream is lagging.
    pub max_lag: u64,
    /// Blocks below the reference height taken as final when no node
    /// reports a finalized height.
    pub finality_depth: u64,
}

/// What a round says of the network's finalized height.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finality {
    /// The lower median of a majority of the answering nodes' reports.
    Reported(u64),
    /// No node reported one: the reference height minus the depth.
    Depth(u64),
}

/// What a round says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Highest trustworthy height seen this round; `None` if nobody answered.
    pub reference_height: Option<u64>,
    /// The network's finalized height by this round; `None` if unknown
    /// (or only a minority of the nodes reported one).
    pub finalized: Option<Finality>,
    /// The chain id upstreams are held to; `None` while unknown.
    pub expected_chain_id: Option<String>,
    /// Parallel to [`Round::upstreams`]: the observation and the lag.
    pub observations: Vec<(Observation, u64)>,
}

/// Judges one round.
pub fn judge(round: Round<'_>) -> Verdict {
    let leader = round.leader.and_then(|l| l.result.as_ref().ok());
    let expected = round
        .configured_chain_id
        .map(str::to_owned)
        .or_else(|| leader.map(|l| l.chain_id.clone()))
        .or_else(|| round.learned_chain_id.map(str::to_owned))
        .or_else(|| majority_chain_id(round.upstreams));

    let on_chain = |chain_id: &str| expected.as_deref().is_none_or(|e| e == chain_id);
    let leader_height = leader.filter(|l| on_chain(&l.chain_id)).map(|l| l.height);
    let best_upstream = round
        .upstreams
        .iter()
        .filter_map(|o| o.result.as_ref().ok())
        .filter(|a| on_chain(&a.chain_id))
        .map(|a| a.height)
        .max();
    let reference_height = leader_height.max(best_upstream);
    let answering: Vec<&ProbeAnswer> = leader
        .into_iter()
        .chain(
            round
                .upstreams
                .iter()
                .filter_map(|o| o.result.as_ref().ok()),
        )
        .filter(|a| on_chain(&a.chain_id))
        .collect();
    let mut reported: Vec<u64> = answering
        .iter()
        .filter_map(|a| a.finalized.filter(|f| *f <= a.height))
        .collect();
    reported.sort_unstable();
    let cap = |f: u64| reference_height.map_or(f, |h| f.min(h));
    let finalized = if reported.len() * 2 > answering.len() {
        reported
            .get((reported.len() - 1) / 2)
            .map(|median| Finality::Reported(cap(*median)))
    } else if reported.is_empty() {
        reference_height
            .and_then(|h| h.checked_sub(round.finality_depth))
            .filter(|f| *f > 0)
            .map(Finality::Depth)
    } else {
        None
    };

    let observations = round
        .upstreams
        .iter()
        .map(|o| match &o.result {
            Err(why) => (Observation::Failing(why.clone()), 0),
            Ok(a) if !on_chain(&a.chain_id) => (
                Observation::WrongChain {
                    expected: expected.clone().unwrap_or_default(),
                    actual: a.chain_id.clone(),
                },
                0,
            ),
            Ok(a) => {
                let lag = reference_height
                    .unwrap_or(a.height)
                    .saturating_sub(a.height);
                if lag > round.max_lag {
                    (
                        Observation::Lagging {
                            lag,
                            max_lag: round.max_lag,
                        },
                        lag,
                    )
                } else {
                    (Observation::Pass, lag)
                }
            }
        })
        .collect();

    Verdict {
        reference_height,
        finalized,
        expected_chain_id: expected,
        observations,
    }
}

/// The chain id more than half of the answering upstreams report.
fn majority_chain_id(upstreams: &[ProbeOutcome]) -> Option<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut answering = 0;
    for a in upstreams.iter().filter_map(|o| o.result.as_ref().ok()) {
        answering += 1;
        *counts.entry(a.chain_id.as_str()).or_default() += 1;
    }
    counts
        .into_iter()
        .find(|(_, n)| *n * 2 > answering)
        .map(|(id, _)| id.to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::health::ProbeAnswer;

    fn ok(height: u64, chain_id: &str) -> ProbeOutcome {
        ProbeOutcome {
            latency: Duration::from_millis(1),
            result: Ok(ProbeAnswer {
                height,
                chain_id: chain_id.into(),
                finalized: None,
            }),
        }
    }

    fn finalized(height: u64, finalized: u64) -> ProbeOutcome {
        ProbeOutcome {
            latency: Duration::from_millis(1),
            result: Ok(ProbeAnswer {
                height,
                chain_id: "1".into(),
                finalized: Some(finalized),
            }),
        }
    }

    #[test]
    fn finalized_is_the_lower_median_of_a_majority_else_head_minus_depth() {
        use Finality::*;
        let f = |ups: &[ProbeOutcome]| judge(round(None, ups)).finalized;
        let three = [finalized(100, 60), finalized(100, 70), finalized(100, 99)];
        assert_eq!(f(&three), Some(Reported(70)));
        let two = [finalized(100, 60), finalized(100, 90)];
        assert_eq!(f(&two), Some(Reported(60)));
        // A minority does not decide: one of three reports.
        assert_eq!(f(&[finalized(100, 99), ok(100, "1"), ok(100, "1")]), None);
        // Above its own head: nonsense, not a report.
        assert_eq!(f(&[finalized(100, 500), ok(100, "1")]), Some(Depth(36)));
        // Another chain's node does not vote.
        let other = [
            finalized(100, 80),
            ProbeOutcome {
                latency: Duration::from_millis(1),
                result: Ok(ProbeAnswer {
                    height: 100,
                    chain_id: "5".into(),
                    finalized: Some(99),
                }),
            },
        ];
        let mut r = round(None, &other);
        r.configured_chain_id = Some("1");
        assert_eq!(judge(r).finalized, Some(Reported(80)));
        // No report: reference height minus the depth; unknown below it.
        assert_eq!(f(&[ok(100, "1")]), Some(Depth(36)));
        assert_eq!(f(&[ok(64, "1")]), None);
        assert_eq!(f(&[err("down")]), None);
    }

    fn err(why: &str) -> ProbeOutcome {
        ProbeOutcome {
            latency: Duration::from_millis(1),
            result: Err(why.into()),
        }
    }

    fn round<'a>(leader: Option<&'a ProbeOutcome>, ups: &'a [ProbeOutcome]) -> Round<'a> {
        Round {
            configured_chain_id: None,
            learned_chain_id: None,
            leader,
            upstreams: ups,
            max_lag: 10,
            finality_depth: 64,
        }
    }

    #[test]
    fn reference_is_the_max_of_leader_and_answering_upstreams() {
        let ups = [ok(100, "1"), ok(85, "1"), err("refused")];
        let v = judge(round(None, &ups));
        assert_eq!(v.reference_height, Some(100));
        assert_eq!(v.observations[0], (Observation::Pass, 0));
        assert_eq!(
            v.observations[1],
            (
                Observation::Lagging {
                    lag: 15,
                    max_lag: 10
                },
                15
            )
        );
        assert_eq!(v.observations[2].0, Observation::Failing("refused".into()));

        let leader = ok(120, "1");
        let v = judge(round(Some(&leader), &ups));
        assert_eq!(v.reference_height, Some(120));
        assert_eq!(
            v.observations[0],
            (
                Observation::Lagging {
                    lag: 20,
                    max_lag: 10
                },
                20
            )
        );
    }

    #[test]
    fn exactly_max_lag_still_passes() {
        let ups = [ok(100, "1"), ok(90, "1")];
        assert_eq!(
            judge(round(None, &ups)).observations[1],
            (Observation::Pass, 10)
        );
    }

    #[test]
    fn a_failed_leader_does_not_count() {
        let leader = err("down");
        let ups = [ok(50, "1")];
        let v = judge(round(Some(&leader), &ups));
        assert_eq!(v.reference_height, Some(50));
        assert_eq!(v.observations[0].0, Observation::Pass);
    }

    #[test]
    fn wrong_chain_is_quarantined_and_its_height_ignored() {
        let ups = [ok(100, "1"), ok(100, "1"), ok(9_000, "5")];
        let v = judge(round(None, &ups));
        assert_eq!(v.expected_chain_id.as_deref(), Some("1"));
        assert_eq!(v.reference_height, Some(100));
        assert_eq!(v.observations[0].0, Observation::Pass);
        assert_eq!(
            v.observations[2].0,
            Observation::WrongChain {
                expected: "1".into(),
                actual: "5".into()
            }
        );
    }

    #[test]
    fn configured_then_leader_then_learned_then_majority() {
        let ups = [ok(1, "5"), ok(1, "5"), ok(1, "1")];
        let leader = ok(1, "1");
        let mut r = round(Some(&leader), &ups);
        assert_eq!(judge(r).expected_chain_id.as_deref(), Some("1"));
        r.configured_chain_id = Some("7");
        assert_eq!(judge(r).expected_chain_id.as_deref(), Some("7"));
        r.configured_chain_id = None;
        r.leader = None;
        r.learned_chain_id = Some("1");
        assert_eq!(judge(r).expected_chain_id.as_deref(), Some("1"));
        r.learned_chain_id = None;
        assert_eq!(judge(r).expected_chain_id.as_deref(), Some("5"));
    }

    #[test]
    fn a_tie_quarantines_nobody() {
        let ups = [ok(1, "5"), ok(1, "1")];
        let v = judge(round(None, &ups));
        assert_eq!(v.expected_chain_id, None);
        assert!(v.observations.iter().all(|(o, _)| *o == Observation::Pass));
    }
}
