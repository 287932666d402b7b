//! What the request path, the admin endpoints and the snapshot client share.
//!
//! The routing table sits behind one `ArcSwap`: requests load it once, lock
//! free, and keep that `Arc` for their whole life, so a snapshot swapped in
//! mid-request never changes a request's view. Only the snapshot client
//! stores into it (one writer), which is why "load the old table, build the
//! new one, store it" needs no lock.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::balance::EjectionTimes;
use crate::cache::shared::SharedTierError;
use crate::cache::{ResponseCache, SharedTier};
use crate::config::ProxyConfig;
use crate::metrics::Metrics;
use crate::proxy::request_id::RequestIds;
use crate::routing::RoutingTable;
use crate::upstream::UpstreamClient;

/// State shared by every part of one data plane.
pub struct Shared {
    /// The routing table currently serving ([`RoutingTable::empty`] until a
    /// snapshot is loaded).
    pub table: ArcSwap<RoutingTable>,
    /// Counters and gauges exported on `/metrics`.
    pub metrics: Metrics,
    /// This data plane's region (selection prefers it).
    pub region: String,
    /// The client tries are posted with (connections are pooled per
    /// upstream, in its [`crate::upstream::Endpoint`]).
    pub upstreams: UpstreamClient,
    /// Largest upstream answer buffered.
    pub max_response_bytes: usize,
    /// Generator of request ids for requests that bring none.
    pub request_ids: RequestIds,
    /// Cool-down bounds of local ejections.
    pub ejection_times: EjectionTimes,
    /// The response cache (`None` when `cache_max_bytes` is 0).
    pub cache: Option<ResponseCache>,
}

impl Shared {
    /// Fresh state for `config`, serving nothing yet. With a shared cache
    /// tier it must run inside the Tokio runtime (the tier starts its
    /// writer task).
    pub fn new(config: &ProxyConfig) -> Result<Arc<Self>, SharedTierError> {
        let mut cache = ResponseCache::new(config.cache_max_bytes);
        if let Some(options) = &config.cache_redis {
            cache = match cache {
                Some(cache) => Some(cache.with_shared(SharedTier::start(options)?)),
                None => return Err(SharedTierError::NoMemoryCache),
            };
        }
        Ok(Arc::new(Self {
            table: ArcSwap::from_pointee(RoutingTable::empty()),
            metrics: Metrics::default(),
            region: config.region.clone(),
            upstreams: UpstreamClient::new(config.node_client.clone()),
            max_response_bytes: config.max_response_bytes,
            request_ids: RequestIds::new(),
            ejection_times: config.ejection,
            cache,
        }))
    }
}
