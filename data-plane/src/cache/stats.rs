//! Per-network cache counters by class (`static`, `head`, `block`):
//! plain atomics in an `Arc` carried across snapshots, like the request
//! counters.

use std::sync::atomic::{AtomicU64, Ordering};

use meridian_common::chain::CacheClass;
use meridian_common::metrics::TextEncoder;

/// The counters of one class.
#[derive(Debug, Default)]
pub struct ClassStats {
    /// Calls answered from the cache.
    pub hits: AtomicU64,
    /// Cacheable calls that went upstream.
    pub misses: AtomicU64,
    /// Cacheable calls that waited for an identical call in flight.
    pub coalesced: AtomicU64,
    /// Entries found past their lifetime and dropped.
    pub stale: AtomicU64,
    /// Memory misses answered by the shared tier (Redis).
    pub shared_hits: AtomicU64,
    /// Memory misses the shared tier was asked for and did not have.
    pub shared_misses: AtomicU64,
}

/// The cache counters of one network.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub static_: ClassStats,
    pub head: ClassStats,
    pub block: ClassStats,
    /// Block hashes that changed at a height already seen.
    pub reorgs: AtomicU64,
    /// Entries dropped because of those.
    pub reorg_drops: AtomicU64,
}

impl CacheStats {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters of `class` (`Never` is not cached; it shares `head`'s
    /// slot only so this needs no `Option`, and is never counted).
    pub fn of(&self, class: CacheClass) -> &ClassStats {
        match class {
            CacheClass::Static => &self.static_,
            CacheClass::AtHeight(_) | CacheClass::ByHash => &self.block,
            CacheClass::Head | CacheClass::Never => &self.head,
        }
    }

    fn classes(&self) -> [(&'static str, &ClassStats); 3] {
        [
            ("static", &self.static_),
            ("head", &self.head),
            ("block", &self.block),
        ]
    }

    /// Writes the counters of each `(network, stats)` pair.
    pub fn render(all: &[(&str, &CacheStats)], out: &mut TextEncoder) {
        type Pick = fn(&ClassStats) -> &AtomicU64;
        let counters: [(&str, &str, Pick); 6] = [
            (
                "meridian_cache_hits_total",
                "Calls answered from the cache, by network and class.",
                |c| &c.hits,
            ),
            (
                "meridian_cache_misses_total",
                "Cacheable calls that went upstream (one per flight), by network and class.",
                |c| &c.misses,
            ),
            (
                "meridian_cache_coalesced_total",
                "Cacheable calls answered by an identical call already in flight, by network and class.",
                |c| &c.coalesced,
            ),
            (
                "meridian_cache_stale_drops_total",
                "Entries found past their lifetime (head TTL) and dropped, by network and class.",
                |c| &c.stale,
            ),
            (
                "meridian_cache_redis_hits_total",
                "Memory misses answered by the shared tier (Redis), by network and class.",
                |c| &c.shared_hits,
            ),
            (
                "meridian_cache_redis_misses_total",
                "Memory misses the shared tier (Redis) was asked for and did not have (or failed), by network and class.",
                |c| &c.shared_misses,
            ),
        ];
        for (name, help, total) in [
            (
                "meridian_cache_reorgs_total",
                "Reorganisations seen: an answer showed another block hash at a height already seen.",
                (|s| &s.reorgs) as fn(&CacheStats) -> &AtomicU64,
            ),
            (
                "meridian_cache_reorg_drops_total",
                "Entries dropped because a reorganisation reached the block they depend on.",
                |s| &s.reorg_drops,
            ),
        ] {
            out.family(name, "counter", help);
            for (network, stats) in all {
                out.sample(
                    name,
                    &[("network", network)],
                    total(stats).load(Ordering::Relaxed),
                );
            }
        }
        for (name, help, pick) in counters {
            out.family(name, "counter", help);
            for (network, stats) in all {
                for (class, c) in stats.classes() {
                    out.sample(
                        name,
                        &[("network", network), ("class", class)],
                        pick(c).load(Ordering::Relaxed),
                    );
                }
            }
        }
    }
}
