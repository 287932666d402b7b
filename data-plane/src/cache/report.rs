//! `/cache` on the admin listener: the cache's state as JSON, per network
//! (what `/metrics` carries, in one readable document for operators).

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::ResponseCache;
use super::stats::ClassStats;
use crate::routing::RoutingTable;

#[derive(Debug, Serialize)]
struct Class {
    hits: u64,
    misses: u64,
    coalesced: u64,
    stale_drops: u64,
    /// hits ÷ (hits + misses + coalesced); `null` before any call.
    hit_ratio: Option<f64>,
}

impl Class {
    fn of(c: &ClassStats) -> Class {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let (hits, misses, coalesced) = (load(&c.hits), load(&c.misses), load(&c.coalesced));
        let calls = hits + misses + coalesced;
        Class {
            hits,
            misses,
            coalesced,
            stale_drops: load(&c.stale),
            hit_ratio: (calls > 0).then(|| hits as f64 / calls as f64),
        }
    }
}

#[derive(Debug, Serialize)]
struct Network<'a> {
    id: &'a str,
    enabled: bool,
    head_ttl_ms: u32,
    max_entry_bytes: u64,
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
    networks: Vec<Network<'a>>,
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
        networks,
    };
    // Plain numbers, strings and bools: serialising cannot fail.
    serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
}
