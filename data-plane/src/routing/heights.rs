//! How far a network's chain is, kept fresh between snapshots.
//!
//! A snapshot's upstream heights only move when the control plane
//! republishes; the `Heights` messages of its stream (rule 8 of
//! `snapshot.proto`) move these in between. The request path reads them
//! with one relaxed atomic load; the stream client is the only writer, and
//! the value is carried from one table to the next with the network.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The heights of one network (0: not known).
#[derive(Debug, Default)]
pub struct ChainHeights {
    head: AtomicU64,
    finalized: AtomicU64,
    /// Set while Heights keep saying less than `finalized` (e.g. after a
    /// control-plane restart), so that is logged once, not every round.
    backwards: AtomicBool,
}

impl ChainHeights {
    /// The latest head height known.
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Relaxed)
    }

    /// The highest finalized height known, at most the head: after a
    /// chain was reset below it, nothing above the head is final.
    pub fn finalized(&self) -> u64 {
        self.finalized
            .load(Ordering::Relaxed)
            .min(self.head.load(Ordering::Relaxed))
    }

    /// A `Heights` message: the head is the control plane's reference
    /// height as it is now (it may go down, e.g. after a chain was reset);
    /// the finalized height never goes backwards. Zeroes are "unknown" and
    /// change nothing.
    pub fn update(&self, head: u64, finalized: u64) {
        if head != 0 {
            self.head.store(head, Ordering::Relaxed);
        }
        if finalized != 0 {
            let before = self.finalized.fetch_max(finalized, Ordering::Relaxed);
            let backwards = finalized < before;
            if self.backwards.swap(backwards, Ordering::Relaxed) != backwards && backwards {
                tracing::warn!(
                    finalized,
                    held = before,
                    "ignoring a finalized height that would go backwards"
                );
            }
        }
    }

    /// A new snapshot of the network: its upstreams' heights are at least
    /// what the table knew then, which may be behind a later `Heights`.
    pub fn at_least(&self, head: u64) {
        self.head.fetch_max(head, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_follows_finalized_only_rises_zero_is_unknown() {
        let h = ChainHeights::default();
        h.update(100, 90);
        assert_eq!((h.head(), h.finalized()), (100, 90));
        h.update(95, 80);
        assert_eq!((h.head(), h.finalized()), (95, 90));
        h.update(0, 0);
        assert_eq!((h.head(), h.finalized()), (95, 90));
        h.at_least(50);
        assert_eq!(h.head(), 95);
        h.at_least(120);
        assert_eq!(h.head(), 120);
        h.update(50, 0);
        assert_eq!(h.finalized(), 50, "never above the head");
    }
}
