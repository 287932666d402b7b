//! `/cache` on the admin listener: the cache's state as JSON, per network
//! (what `/metrics` carries, in one readable document for operators).

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::stats::ClassStats;
use super::{ResponseCache, SharedTier};
use crate::routing::RoutingTable;

#[derive(Debug, Serialize)]
struct Class {
    hits: u64,
    misses: u64,
    coalesced: u64,
    stale_drops: u64,
    /// Memory misses answered by the shared tier, and those it lacked.
    redis_hits: u64,
    redis_misses: u64,
    /// (hits + redis_hits) ÷ every cacheable call; `null` before any.
    hit_ratio: Option<f64>,
}

impl Class {
    fn of(c: &ClassStats) -> Class {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let (hits, misses, coalesced) = (load(&c.hits), load(&c.misses), load(&c.coalesced));
        let redis_hits = load(&c.shared_hits);
        let calls = hits + redis_hits + misses + coalesced;
        Class {
            hits,
            misses,
            coalesced,
            stale_drops: load(&c.stale),
            redis_hits,
            redis_misses: load(&c.shared_misses),
            hit_ratio: (calls > 0).then(|| (hits + redis_hits) as f64 / calls as f64),
        }
    }
}

#[derive(Debug, Serialize)]
struct Network<'a> {
    id: &'a str,
    enabled: bool,
    head_ttl_ms: u32,
    max_entry_bytes: u64,
    redis_ttl_s: u32,
    finalized_height: u64,
    reorgs: u64,
    reorg_drops: u64,
    classes: Classes,
}

#[derive(Debug, Serialize)]
struct Classes {
    #[serde(rename = "static")]
    static_: Class,
    head: Class,
    block: Class,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    /// `false` when the data plane runs with `--cache-max-bytes 0`.
    enabled: bool,
    max_bytes: u64,
    bytes: u64,
    entries: usize,
    evictions: u64,
    /// The shared tier; `null` without `--cache-redis`.
    redis: Option<Redis>,
    networks: Vec<Network<'a>>,
}

#[derive(Debug, Serialize)]
struct Redis {
    /// `closed` (asked), `open` (not asked), `half-open` (one trial out).
    breaker: &'static str,
    breaker_opened: u64,
    errors: u64,
    timeouts: u64,
    undecodable: u64,
    skipped: u64,
    writes: u64,
    write_drops: u64,
}

impl Redis {
    fn of(tier: &SharedTier) -> Redis {
        let s = tier.stats();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Redis {
            breaker: tier.breaker().state().name(),
            breaker_opened: tier.breaker().opened(),
            errors: load(&s.errors),
            timeouts: load(&s.timeouts),
            undecodable: load(&s.undecodable),
            skipped: load(&s.skipped),
            writes: load(&s.written),
            write_drops: load(&s.write_drops),
        }
    }
}

/// The JSON document of `/cache`.
pub fn render(cache: Option<&ResponseCache>, table: &RoutingTable) -> String {
    let mut networks: Vec<Network<'_>> = table
        .networks()
        .map(|n| {
            let s = &n.cache_stats;
            Network {
                id: &n.id,
                enabled: n.cache.enabled,
                head_ttl_ms: n.cache.head_ttl_ms,
                max_entry_bytes: n.cache.max_entry_bytes,
                redis_ttl_s: n.cache.redis_ttl_s,
                finalized_height: n.heights.finalized(),
                reorgs: s.reorgs.load(Ordering::Relaxed),
                reorg_drops: s.reorg_drops.load(Ordering::Relaxed),
                classes: Classes {
                    static_: Class::of(&s.static_),
                    head: Class::of(&s.head),
                    block: Class::of(&s.block),
                },
            }
        })
        .collect();
    networks.sort_by(|a, b| a.id.cmp(b.id));
    let report = Report {
        enabled: cache.is_some(),
        max_bytes: cache.map_or(0, ResponseCache::max_bytes),
        bytes: cache.map_or(0, ResponseCache::bytes),
        entries: cache.map_or(0, ResponseCache::len),
        evictions: cache.map_or(0, ResponseCache::evictions),
        redis: cache.and_then(ResponseCache::shared).map(Redis::of),
        networks,
    };
    // Plain numbers, strings and bools: serialising cannot fail.
    serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
}
