//! The response cache of one data plane: answers of cacheable reads, kept
//! by network, method and canonical params (docs/caching.md).
//!
//! - [`freshness`]: how long an answer may be served (class, finality).
//! - [`stats`]: hits, misses and drops per network and class.
//! - [`flight`]: coalescing of identical calls in flight.
//! - [`report`]: the admin listener's `/cache` view.
//! - [`shared`]: the region's shared tier (Redis), with its [`breaker`]
//!   and value [`codec`].
//!
//! Whether a call may be cached, and its canonical params, are the chain
//! module's answers ([`meridian_common::chain::Chain::cache_class`],
//! [`meridian_common::chain::Chain::canonical_params`]); nothing here
//! knows a chain. The store is a [`quick_cache`] bounded in bytes (key,
//! answer and a fixed overhead per entry), shared by every network of the
//! proxy and carried across snapshots. The client's id is never part of a
//! key: a hit is written out around the asking client's own id bytes.

pub mod breaker;
pub mod codec;
pub mod flight;
pub mod freshness;
pub mod report;
pub mod shared;
pub mod stats;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use meridian_common::chain::CacheClass;
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter};

pub use freshness::Lifetime;
pub use shared::SharedTier;
pub use stats::CacheStats;

use crate::proxy::forward::Validated;
use crate::proxy::hedge::Report;
use crate::proxy::parse::Call;
use crate::proxy::reply::ErrorReply;

/// What one flight of coalesced calls brings back (see [`flight`]).
pub type Flown = (Result<Validated, ErrorReply>, Report);
use crate::routing::RoutedNetwork;

/// Bytes charged per entry beyond its key and answer: the store's own
/// bookkeeping, so many tiny entries cannot exceed the bound either.
const ENTRY_OVERHEAD: u64 = 96;

/// Heights whose block hash is remembered for reorg detection, all
/// networks together.
const SEEN_HEIGHTS: usize = 65_536;

/// One kept answer: the raw JSON of its `result` member.
#[derive(Debug, Clone)]
pub struct Entry {
    pub result: Bytes,
    pub lifetime: Lifetime,
    /// A reorganisation at or below this height drops the entry
    /// ([`freshness::reorg_from`]).
    pub reorg_from: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct ByBytes;

impl Weighter<Box<str>, Entry> for ByBytes {
    fn weight(&self, key: &Box<str>, entry: &Entry) -> u64 {
        (key.len() + entry.result.len()) as u64 + ENTRY_OVERHEAD
    }
}

/// Counts evictions (the only lifecycle event the cache reports).
#[derive(Debug, Clone, Default)]
struct CountEvictions(Arc<AtomicU64>);

impl Lifecycle<Box<str>, Entry> for CountEvictions {
    type RequestState = ();
    fn begin_request(&self) {}
    fn on_evict(&self, _: &mut (), _: Box<str>, _: Entry) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A cacheable call, ready to look up and, on a miss, to store its answer.
#[derive(Debug)]
pub struct Cacheable {
    pub key: Box<str>,
    pub class: CacheClass,
}

/// The answers one data plane keeps, bounded in bytes.
pub struct ResponseCache {
    entries: Cache<Box<str>, Entry, ByBytes, DefaultHashBuilder, CountEvictions>,
    evictions: Arc<AtomicU64>,
    max_bytes: u64,
    flights: Arc<flight::Flights<Flown>>,
    /// The block hash last seen at each (network, height), for reorg
    /// detection; bounded in entries (recent heights are what reorganise).
    seen: Cache<(String, u64), Box<str>>,
    /// The region's Redis, when the proxy has one.
    shared: Option<SharedTier>,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("entries", &self.entries.len())
            .field("bytes", &self.entries.weight())
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl ResponseCache {
    /// A cache holding at most `max_bytes`; `None` for 0 (no cache).
    pub fn new(max_bytes: u64) -> Option<Self> {
        if max_bytes == 0 {
            return None;
        }
        let evictions = CountEvictions::default();
        // The estimate only sizes the table up front: 1 KiB per answer.
        let estimated = usize::try_from(max_bytes / 1024)
            .unwrap_or(usize::MAX)
            .max(16);
        Some(Self {
            entries: Cache::with(
                estimated,
                max_bytes,
                ByBytes,
                DefaultHashBuilder::default(),
                evictions.clone(),
            ),
            evictions: evictions.0,
            max_bytes,
            flights: Arc::default(),
            seen: Cache::new(SEEN_HEIGHTS),
            shared: None,
        })
    }

    /// This cache with `tier` behind it.
    pub fn with_shared(mut self, tier: SharedTier) -> Self {
        self.shared = Some(tier);
        self
    }

    /// The shared tier, if any.
    pub fn shared(&self) -> Option<&SharedTier> {
        self.shared.as_ref()
    }

    /// Whether the answer of `call` may be in the shared tier, which holds
    /// only immutable ones: static calls, blocks at or below the finalized
    /// height, and by-hash calls (final or not is known from the answer).
    fn may_be_shared(network: &RoutedNetwork, call: &Cacheable) -> bool {
        match call.class {
            CacheClass::Static | CacheClass::ByHash => true,
            CacheClass::AtHeight(height) => {
                let finalized = network.heights.finalized();
                finalized > 0 && height <= finalized
            }
            CacheClass::Head | CacheClass::Never => false,
        }
    }

    /// The answer of `call` from the shared tier after a memory miss, kept
    /// in memory too; `None` when there is no tier, the answer cannot be
    /// there, or it is not.
    pub async fn get_shared(&self, network: &RoutedNetwork, call: &Cacheable) -> Option<Bytes> {
        let tier = self.shared.as_ref()?;
        if !Self::may_be_shared(network, call) {
            return None;
        }
        let found = tier.get(&call.key, network.cache.max_entry_bytes).await;
        self.take_shared(network, call, found)
    }

    /// [`ResponseCache::get_shared`] for several calls in one round trip,
    /// in order.
    pub async fn get_shared_many(
        &self,
        network: &RoutedNetwork,
        calls: &[&Cacheable],
    ) -> Vec<Option<Bytes>> {
        let mut out = vec![None; calls.len()];
        let Some(tier) = self.shared.as_ref() else {
            return out;
        };
        let (at, asked): (Vec<usize>, Vec<&str>) = calls
            .iter()
            .enumerate()
            .filter(|(_, call)| Self::may_be_shared(network, call))
            .map(|(i, call)| (i, &*call.key))
            .unzip();
        if asked.is_empty() {
            return out;
        }
        let found = tier.get_many(&asked, network.cache.max_entry_bytes).await;
        for (i, found) in at.into_iter().zip(found) {
            if let (Some(slot), Some(call)) = (out.get_mut(i), calls.get(i)) {
                *slot = self.take_shared(network, call, found);
            }
        }
        out
    }

    /// Counts what the shared tier said about `call`; a hit is kept in memory.
    fn take_shared(
        &self,
        network: &RoutedNetwork,
        call: &Cacheable,
        found: shared::Lookup,
    ) -> Option<Bytes> {
        let stats = network.cache_stats.of(call.class);
        match found {
            shared::Lookup::Hit(result, reorg_from) => {
                CacheStats::bump(&stats.shared_hits);
                let entry = Entry {
                    result: result.clone(),
                    lifetime: Lifetime::Immutable,
                    reorg_from,
                };
                self.entries.insert(call.key.clone(), entry);
                Some(result)
            }
            shared::Lookup::Miss => {
                CacheStats::bump(&stats.shared_misses);
                None
            }
            shared::Lookup::Skipped => None,
        }
    }

    /// The key of `call` in `network`, when its answers may be cached.
    pub fn cacheable(network: &RoutedNetwork, call: &Call<'_>) -> Option<Cacheable> {
        if !network.cache.enabled || call.is_notification() {
            return None;
        }
        let chain = network.chain.chain();
        let class = chain.cache_class(&call.method, call.params);
        if class == CacheClass::Never {
            return None;
        }
        let params = chain.canonical_params(&call.method, call.params)?;
        let mut key =
            String::with_capacity(network.id.len() + call.method.len() + params.len() + 2);
        for part in [network.id.as_str(), "\n", &call.method, "\n", &params] {
            key.push_str(part);
        }
        Some(Cacheable {
            key: key.into_boxed_str(),
            class,
        })
    }

    /// The fresh answer kept for `call`, counted as a hit (an entry past
    /// its lifetime is dropped and counted as stale). The caller counts
    /// what a miss becomes: a request upstream or a coalesced wait.
    pub fn get(&self, network: &RoutedNetwork, call: &Cacheable, now: Instant) -> Option<Bytes> {
        let stats = network.cache_stats.of(call.class);
        match self.entries.get(&*call.key) {
            Some(entry) if entry.lifetime.fresh_at(now) => {
                CacheStats::bump(&stats.hits);
                Some(entry.result)
            }
            Some(_) => {
                self.entries.remove(&*call.key);
                CacheStats::bump(&stats.stale);
                None
            }
            None => None,
        }
    }

    /// Keeps `result`, an upstream's answer to `call`, if its class and
    /// the network's finalized height allow.
    pub fn put(&self, network: &RoutedNetwork, call: Cacheable, result: &Bytes, now: Instant) {
        let chain = network.chain.chain();
        // Read once, borrowed: the block the answer names and its hash.
        let raw = serde_json::from_slice::<&serde_json::value::RawValue>(result).ok();
        let answer_block = match call.class {
            CacheClass::ByHash => raw.and_then(|raw| chain.answer_block(raw)),
            _ => None,
        };
        let lifetime = freshness::lifetime(
            call.class,
            result,
            answer_block,
            &network.cache,
            network.heights.finalized(),
            now,
        );
        let Some(lifetime) = lifetime else {
            return;
        };
        let shown = raw.and_then(|raw| chain.answer_block_hash(raw));
        if let Some((height, hash)) = &shown {
            self.check_reorg(network, *height, hash);
        }
        // A copy: `result` is a slice of the upstream's whole answer
        // (a batch, say), which must not stay alive behind one entry.
        let entry = Entry {
            result: Bytes::copy_from_slice(result),
            lifetime,
            reorg_from: freshness::reorg_from(call.class, answer_block),
        };
        if let (Some(tier), Lifetime::Immutable) = (&self.shared, lifetime) {
            tier.put(
                &call.key,
                &entry.result,
                entry.reorg_from,
                network.cache.redis_ttl_s,
            );
        }
        self.entries.insert(call.key, entry);
    }

    /// Remembers that block `height` of `network` has `hash`; a different
    /// hash than the one remembered means the chain was reorganised there:
    /// every entry of the network that depends on that height or above is
    /// dropped, and counted.
    fn check_reorg(&self, network: &RoutedNetwork, height: u64, hash: &str) {
        let key = (network.id.clone(), height);
        match self.seen.get(&key) {
            Some(known) if &*known == hash => return,
            Some(_) => {}
            None => {
                self.seen.insert(key, hash.into());
                return;
            }
        }
        self.seen.insert(key, hash.into());
        let prefix = format!("{}\n", network.id);
        let dropped = AtomicU64::new(0);
        self.entries.retain(|key, entry| {
            let gone =
                key.starts_with(&prefix) && entry.reorg_from.is_some_and(|from| from >= height);
            if gone {
                dropped.fetch_add(1, Ordering::Relaxed);
            }
            !gone
        });
        let dropped = dropped.into_inner();
        let stats = &network.cache_stats;
        CacheStats::bump(&stats.reorgs);
        stats.reorg_drops.fetch_add(dropped, Ordering::Relaxed);
        tracing::warn!(
            network = network.id.as_str(),
            height,
            dropped,
            "block hash changed at this height (a reorg): cached answers of it and above dropped"
        );
    }

    /// Identical calls in flight, coalesced.
    pub fn flights(&self) -> &Arc<flight::Flights<Flown>> {
        &self.flights
    }

    /// Bytes held (keys, answers and per-entry overhead).
    pub fn bytes(&self) -> u64 {
        self.entries.weight()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bound, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Entries evicted to stay within the bound.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::table::tests::model;
    use crate::routing::{RoutingTable, SnapshotMeta};

    #[test]
    fn the_cache_stays_within_its_bytes_and_counts_what_it_evicts() {
        let table = RoutingTable::build(
            SnapshotMeta::default(),
            model(Vec::new(), None),
            "eu",
            &RoutingTable::empty(),
        )
        .unwrap();
        let network = table.network("eth").unwrap();
        let max = 64 * 1024;
        let cache = ResponseCache::new(max).unwrap();
        let answer = Bytes::from(format!("\"{}\"", "a".repeat(1_000)));
        for i in 0..1_000 {
            let call = Cacheable {
                key: format!("eth\nnet_version\n[{i}]").into_boxed_str(),
                class: CacheClass::Static,
            };
            cache.put(network, call, &answer, Instant::now());
            assert!(
                cache.bytes() <= max,
                "{} bytes after {i} puts",
                cache.bytes()
            );
        }
        assert!(cache.len() < 1_000 && !cache.is_empty(), "{}", cache.len());
        assert_eq!(cache.evictions() as usize, 1_000 - cache.len());
        assert!(ResponseCache::new(0).is_none(), "0 bytes: no cache");
    }
}
