//! Choosing the upstream for one try.
//!
//! Healthy upstreams only; this region's first, the other regions' only when
//! none of this region's is left; within a group, a weighted random pick by
//! score × weight; never an upstream this request already tried. The leader
//! is the caller's fallback when this returns `None`. Two passes over a
//! small index list and a stack-allocated "tried" set: no lock, no
//! allocation.

use meridian_common::snapshot::Role;
use rand::Rng;

use super::table::{RoutedNetwork, RoutedUpstream};

/// The upstreams one request has tried, by index into the network's
/// upstreams (plus whether the leader was tried).
#[derive(Debug, Clone, Default)]
pub struct Tried {
    indices: [usize; Tried::CAPACITY],
    len: usize,
    /// The leader served a try.
    pub leader: bool,
}

impl Tried {
    /// Most upstreams remembered; more tries than this per request are not
    /// meaningful (policies cap tries far lower).
    pub const CAPACITY: usize = 16;

    /// Remembers that `index` was tried.
    pub fn insert(&mut self, index: usize) {
        if self.len < Self::CAPACITY {
            self.indices[self.len] = index;
            self.len += 1;
        }
    }

    pub fn contains(&self, index: usize) -> bool {
        self.indices[..self.len].contains(&index)
    }

    /// Upstream tries recorded (the leader not included).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0 && !self.leader
    }
}

/// An upstream picked for a try.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// Index into the network's upstreams.
    pub index: usize,
    pub upstream: &'a RoutedUpstream,
}

/// Picks a healthy upstream with `role` that `tried` does not contain,
/// preferring this region's; `None` when there is none.
pub fn select<'a, R: Rng + ?Sized>(
    network: &'a RoutedNetwork,
    role: Role,
    tried: &Tried,
    rng: &mut R,
) -> Option<Candidate<'a>> {
    select_where(network, role, tried, rng, |_| true)
}

/// [`select`] among the upstreams that also pass `admit` (not ejected, has
/// a free slot, …).
pub fn select_where<'a, R, F>(
    network: &'a RoutedNetwork,
    role: Role,
    tried: &Tried,
    rng: &mut R,
    admit: F,
) -> Option<Candidate<'a>>
where
    R: Rng + ?Sized,
    F: Fn(&RoutedUpstream) -> bool,
{
    pick(network, &network.local, role, tried, rng, &admit)
        .or_else(|| pick(network, &network.remote, role, tried, rng, &admit))
}

fn pick<'a, R, F>(
    network: &'a RoutedNetwork,
    group: &[usize],
    role: Role,
    tried: &Tried,
    rng: &mut R,
    admit: &F,
) -> Option<Candidate<'a>>
where
    R: Rng + ?Sized,
    F: Fn(&RoutedUpstream) -> bool,
{
    let eligible = |i: &usize| -> Option<(usize, &'a RoutedUpstream)> {
        let u = network.upstreams.get(*i)?;
        (!tried.contains(*i) && u.has_role(role) && admit(u)).then_some((*i, u))
    };
    let total: u64 = group
        .iter()
        .filter_map(eligible)
        .map(|(_, u)| u.selection_weight)
        .sum();
    if total == 0 {
        return None;
    }
    let mut point = rng.random_range(0..total);
    for (index, upstream) in group.iter().filter_map(eligible) {
        if point < upstream.selection_weight {
            return Some(Candidate { index, upstream });
        }
        point -= upstream.selection_weight;
    }
    None
}

#[cfg(test)]
mod tests {
    use meridian_common::snapshot::UpstreamState::{Healthy, Lagging};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::routing::table::tests::{model, upstream};
    use crate::routing::{RoutingTable, SnapshotMeta};

    fn network(ups: Vec<meridian_common::snapshot::Upstream>) -> RoutingTable {
        RoutingTable::build(
            SnapshotMeta::default(),
            model(ups, None),
            "eu",
            &RoutingTable::empty(),
        )
        .unwrap()
    }

    fn counts(
        table: &RoutingTable,
        tried: &Tried,
        n: usize,
    ) -> std::collections::HashMap<String, usize> {
        let net = table.network("eth").unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..n {
            if let Some(c) = select(net, Role::Read, tried, &mut rng) {
                *counts.entry(c.upstream.id.clone()).or_insert(0) += 1;
            }
        }
        counts
    }

    #[test]
    fn weights_by_score_times_weight() {
        let mut b = upstream("b", "eu", Healthy, 25);
        b.weight = 2; // 50 vs a's 100: a gets about two thirds
        let t = network(vec![upstream("a", "eu", Healthy, 100), b]);
        let c = counts(&t, &Tried::default(), 30_000);
        let a = c["a"] as f64 / 30_000.0;
        assert!((0.60..0.73).contains(&a), "share of a: {a}");
    }

    #[test]
    fn prefers_own_region_and_skips_unhealthy() {
        let t = network(vec![
            upstream("local", "eu", Healthy, 1),
            upstream("remote", "us", Healthy, 100),
            upstream("lagging", "eu", Lagging, 100),
        ]);
        let c = counts(&t, &Tried::default(), 1_000);
        assert_eq!(c.get("local"), Some(&1_000), "{c:?}");
    }

    #[test]
    fn excludes_tried_and_falls_back_to_other_regions_then_nothing() {
        let t = network(vec![
            upstream("local", "eu", Healthy, 100),
            upstream("remote", "us", Healthy, 100),
        ]);
        let mut tried = Tried::default();
        tried.insert(0);
        let c = counts(&t, &tried, 100);
        assert_eq!(c.get("remote"), Some(&100), "{c:?}");
        tried.insert(1);
        assert!(counts(&t, &tried, 10).is_empty());
    }

    #[test]
    fn honours_roles() {
        let mut w = upstream("writer", "eu", Healthy, 100);
        w.roles = vec![Role::Write];
        let t = network(vec![w, upstream("rw", "us", Healthy, 100)]);
        let c = counts(&t, &Tried::default(), 200);
        assert_eq!(c.get("rw"), Some(&200), "{c:?}");
    }

    #[test]
    fn zero_score_is_still_selectable() {
        let t = network(vec![upstream("a", "eu", Healthy, 0)]);
        assert_eq!(counts(&t, &Tried::default(), 10).get("a"), Some(&10));
    }
}
