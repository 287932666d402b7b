//! The routing table built from one snapshot.
//!
//! Everything a request needs is prepared here, once per snapshot, so the
//! request path only reads: upstream URIs are parsed, the `x-handled-by`
//! value of each upstream is rendered, the healthy upstreams are split into
//! this region's and the others, and each selection weight is computed.
//! Runtime objects (latency histograms, request counters) are carried over
//! from the previous table by network id and upstream id, so metrics never
//! reset when a snapshot arrives.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderValue;
use meridian_common::chain::ChainKind;
use meridian_common::metrics::Histogram;
use meridian_common::snapshot::{self, CacheSettings, NetworkPolicy, Role, UpstreamState, Version};

use crate::balance::UpstreamRuntime;
use crate::cache::CacheStats;
use crate::metrics::{NetworkStats, RequestCounters};
use crate::upstream::Endpoint;

use super::heights::ChainHeights;

/// The `x-handled-by` value and metric label of a network's leader.
pub const LEADER_ID: &str = "leader";

/// Where a table came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotMeta {
    pub version: Version,
    /// Hex content hash as checked on apply (empty for the empty table).
    pub content_hash: String,
}

/// The routing table currently serving.
#[derive(Debug, Default)]
pub struct RoutingTable {
    pub meta: SnapshotMeta,
    /// When the control plane built the snapshot (Unix ms; 0 if none).
    pub generated_at_unix_ms: u64,
    networks: HashMap<String, Arc<RoutedNetwork>>,
    /// Networks by the host names they are served at (empty when no
    /// network has one: the request path then never looks at `Host`).
    hosts: HashMap<String, Arc<RoutedNetwork>>,
}

/// One network, ready to route.
#[derive(Debug)]
pub struct RoutedNetwork {
    pub id: String,
    pub chain: ChainKind,
    pub policy: NetworkPolicy,
    /// Every upstream of the snapshot, sorted by id.
    pub upstreams: Vec<RoutedUpstream>,
    /// Indices into `upstreams` of healthy upstreams in this data plane's region.
    pub local: Vec<usize>,
    /// Indices of healthy upstreams in other regions.
    pub remote: Vec<usize>,
    /// Fallback when no healthy upstream can serve.
    pub leader: Option<RoutedUpstream>,
    /// Requests by method and status (carried across snapshots).
    pub requests: Arc<RequestCounters>,
    /// Retries, hedges, queue refusals and waits (carried across snapshots).
    pub stats: Arc<NetworkStats>,
    /// The network's head and finalized heights: from the snapshot's
    /// upstreams, then from the stream's `Heights` (carried across
    /// snapshots). Reads of blocks more than `archive_after_blocks` below
    /// the head go to archive upstreams.
    pub heights: Arc<ChainHeights>,
    /// How this network's answers may be cached.
    pub cache: CacheSettings,
    /// Cache hits, misses and drops (carried across snapshots).
    pub cache_stats: Arc<CacheStats>,
}

/// One upstream (or a leader), ready to send to.
#[derive(Debug)]
pub struct RoutedUpstream {
    /// Upstream id, or [`LEADER_ID`].
    pub id: String,
    /// `id` as the `x-handled-by` header value.
    pub handled_by: HeaderValue,
    /// Where tries are posted, with its idle connections (carried across
    /// snapshots while the URL stays the same).
    pub endpoint: Arc<Endpoint>,
    pub region: String,
    pub roles: Vec<Role>,
    pub state: UpstreamState,
    /// score × weight (score counted as at least 1 so a healthy upstream is
    /// never starved to zero): the upstream's share among its candidates.
    pub selection_weight: u64,
    /// Latency of tries sent to it (carried across snapshots).
    pub latency: Arc<Histogram>,
    /// This data plane's own view: ejection, concurrency slots and queues,
    /// latency quantiles (carried across snapshots).
    pub runtime: Arc<UpstreamRuntime>,
}

impl RoutedUpstream {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// A validated snapshot that still could not be turned into a table. The
/// snapshot validation in `common` makes these unreachable in practice;
/// they exist so that a gap there is a NACK, never a panic.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("network {network:?}: upstream {id:?}: URL {url:?} is not usable: {reason}")]
    Url {
        network: String,
        id: String,
        url: String,
        reason: String,
    },
    #[error("network {network:?}: upstream id {id:?} is not a valid header value")]
    HeaderValue { network: String, id: String },
}

impl RoutingTable {
    /// The table of a data plane that holds no snapshot.
    pub fn empty() -> Self {
        Self::default()
    }

    /// True once a snapshot is loaded.
    pub fn is_loaded(&self) -> bool {
        !self.meta.version.is_none()
    }

    /// The network served under `/<id>`.
    pub fn network(&self, id: &str) -> Option<&Arc<RoutedNetwork>> {
        self.networks.get(id)
    }

    /// The network served at `host` (the `Host` header as the client
    /// sent it: the port and the letter case do not matter), if any.
    pub fn network_at_host(&self, host: &str) -> Option<&Arc<RoutedNetwork>> {
        if self.hosts.is_empty() {
            return None;
        }
        let name = strip_port(host);
        // Host names are stored lower case; most clients send them so.
        self.hosts.get(name).or_else(|| {
            name.bytes()
                .any(|b| b.is_ascii_uppercase())
                .then(|| self.hosts.get(&name.to_ascii_lowercase()))
                .flatten()
        })
    }

    /// Whether some network is served at a host name.
    pub fn has_hosts(&self) -> bool {
        !self.hosts.is_empty()
    }

    /// Every network, in no particular order.
    pub fn networks(&self) -> impl Iterator<Item = &Arc<RoutedNetwork>> {
        self.networks.values()
    }

    /// Builds the table of `model` for a data plane in `region`, carrying
    /// runtime objects over from `previous`.
    pub fn build(
        meta: SnapshotMeta,
        model: snapshot::RoutingTable,
        region: &str,
        previous: &RoutingTable,
    ) -> Result<Self, BuildError> {
        let mut networks = HashMap::with_capacity(model.networks.len());
        let mut hosts = HashMap::new();
        for n in model.networks {
            let old = previous.network(&n.id);
            let names = n.hosts.clone();
            let network = Arc::new(build_network(n, region, old.map(Arc::as_ref))?);
            for name in names {
                hosts.insert(name, network.clone());
            }
            networks.insert(network.id.clone(), network);
        }
        Ok(Self {
            meta,
            generated_at_unix_ms: model.generated_at_unix_ms,
            networks,
            hosts,
        })
    }
}

/// `host` without a `:port` (an IPv6 literal keeps its brackets).
fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    }
}

fn build_network(
    n: snapshot::Network,
    region: &str,
    old: Option<&RoutedNetwork>,
) -> Result<RoutedNetwork, BuildError> {
    let requests = match old {
        Some(old) if old.chain == n.chain => old.requests.clone(),
        _ => Arc::new(RequestCounters::new(n.chain.chain().metric_methods())),
    };
    let stats = match old {
        Some(old) => old.stats.clone(),
        None => Arc::new(NetworkStats::default()),
    };
    let cache_stats = match old {
        Some(old) => old.cache_stats.clone(),
        None => Arc::new(CacheStats::default()),
    };
    // Indexed once per apply: a linear search per upstream made building
    // a 10,000-upstream table quadratic (~250 ms).
    let previous: HashMap<&str, &RoutedUpstream> = old
        .map(|o| o.upstreams.iter().map(|u| (u.id.as_str(), u)).collect())
        .unwrap_or_default();
    let carried = |id: &str| -> Option<&RoutedUpstream> {
        if id == LEADER_ID {
            old?.leader.as_ref()
        } else {
            previous.get(id).copied()
        }
    };
    let max_concurrency = n.policy.max_concurrency;
    let old_latency = |id: &str| -> Arc<Histogram> {
        carried(id)
            .map(|u| u.latency.clone())
            .unwrap_or_else(|| Arc::new(Histogram::latency()))
    };
    let old_runtime = |id: &str| -> Arc<UpstreamRuntime> {
        match carried(id) {
            Some(u) => {
                u.runtime.limiter.set_max(max_concurrency);
                u.runtime.clone()
            }
            None => Arc::new(UpstreamRuntime::new(max_concurrency)),
        }
    };
    let endpoint_for = |network: &str, id: &str, url: &str| -> Result<Arc<Endpoint>, BuildError> {
        match carried(id) {
            Some(u) if u.endpoint.url() == url => Ok(u.endpoint.clone()),
            _ => endpoint(network, id, url),
        }
    };
    // Carried like the counters: a chain of another kind under the same id
    // is another chain.
    let heights = match old {
        Some(old) if old.chain == n.chain => old.heights.clone(),
        _ => Arc::new(ChainHeights::default()),
    };
    heights.at_least(n.upstreams.iter().map(|u| u.head_height).max().unwrap_or(0));

    let mut upstreams = Vec::with_capacity(n.upstreams.len());
    for u in n.upstreams {
        let endpoint = endpoint_for(&n.id, &u.id, &u.url)?;
        let handled_by = HeaderValue::from_str(&u.id).map_err(|_| BuildError::HeaderValue {
            network: n.id.clone(),
            id: u.id.clone(),
        })?;
        let latency = old_latency(&u.id);
        let runtime = old_runtime(&u.id);
        upstreams.push(RoutedUpstream {
            runtime,
            selection_weight: u64::from(u.score.max(1)) * u64::from(u.weight.max(1)),
            handled_by,
            endpoint,
            region: u.region,
            roles: u.roles,
            state: u.state,
            latency,
            id: u.id,
        });
    }

    let (mut local, mut remote) = (Vec::new(), Vec::new());
    for (i, u) in upstreams.iter().enumerate() {
        if u.state != UpstreamState::Healthy {
            continue;
        }
        if u.region == region {
            local.push(i);
        } else {
            remote.push(i);
        }
    }

    let leader = match &n.leader_url {
        Some(url) => Some(RoutedUpstream {
            id: LEADER_ID.to_owned(),
            handled_by: HeaderValue::from_static(LEADER_ID),
            endpoint: endpoint_for(&n.id, LEADER_ID, url)?,
            region: String::new(),
            roles: vec![Role::Read, Role::Write, Role::Archive],
            state: UpstreamState::Healthy,
            selection_weight: 1,
            latency: old_latency(LEADER_ID),
            runtime: old_runtime(LEADER_ID),
        }),
        None => None,
    };

    Ok(RoutedNetwork {
        id: n.id,
        chain: n.chain,
        policy: n.policy,
        upstreams,
        local,
        remote,
        leader,
        requests,
        stats,
        heights,
        cache: n.cache,
        cache_stats,
    })
}

fn endpoint(network: &str, id: &str, url: &str) -> Result<Arc<Endpoint>, BuildError> {
    Endpoint::new(url)
        .map(Arc::new)
        .map_err(|e| BuildError::Url {
            network: network.to_owned(),
            id: id.to_owned(),
            url: url.to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use meridian_common::snapshot::{Network, Upstream};

    use super::*;

    pub(crate) fn upstream(id: &str, region: &str, state: UpstreamState, score: u32) -> Upstream {
        Upstream {
            id: id.into(),
            url: format!("http://127.0.0.1:1/{id}"),
            region: region.into(),
            weight: 1,
            roles: vec![Role::Read, Role::Write],
            state,
            head_height: 1,
            lag: 0,
            latency_ewma_us: 1,
            score,
            reason: String::new(),
        }
    }

    pub(crate) fn model(upstreams: Vec<Upstream>, leader: Option<&str>) -> snapshot::RoutingTable {
        snapshot::RoutingTable {
            networks: vec![Network {
                hosts: Vec::new(),
                id: "eth".into(),
                chain: ChainKind::Evm,
                leader_url: leader.map(str::to_owned),
                upstreams,
                policy: NetworkPolicy::default(),
                cache: Default::default(),
            }],
            generated_at_unix_ms: 1,
        }
    }

    fn meta(seq: u64) -> SnapshotMeta {
        SnapshotMeta {
            version: Version { epoch: 1, seq },
            content_hash: "h".into(),
        }
    }

    #[test]
    fn splits_healthy_upstreams_by_region() {
        let t = RoutingTable::build(
            meta(1),
            model(
                vec![
                    upstream("a", "eu", UpstreamState::Healthy, 90),
                    upstream("b", "us", UpstreamState::Healthy, 90),
                    upstream("c", "eu", UpstreamState::Lagging, 90),
                ],
                Some("http://127.0.0.1:2"),
            ),
            "eu",
            &RoutingTable::empty(),
        )
        .unwrap();
        let n = t.network("eth").unwrap();
        assert_eq!(n.local, vec![0]);
        assert_eq!(n.remote, vec![1]);
        assert_eq!(n.leader.as_ref().unwrap().handled_by, "leader");
        assert!(t.is_loaded());
        assert!(!RoutingTable::empty().is_loaded());
    }

    #[test]
    fn carries_endpoints_and_their_idle_connections_while_the_url_stays() {
        let build = |seq, url: &str, previous: &RoutingTable| {
            let mut a = upstream("a", "eu", UpstreamState::Healthy, 90);
            a.url = url.to_owned();
            RoutingTable::build(
                meta(seq),
                model(vec![a], Some("http://127.0.0.1:2")),
                "eu",
                previous,
            )
            .unwrap()
        };
        let endpoints = |t: &RoutingTable| {
            let n = t.network("eth").unwrap();
            (
                n.upstreams[0].endpoint.clone(),
                n.leader.as_ref().unwrap().endpoint.clone(),
            )
        };
        let first = build(1, "http://127.0.0.1:1/a", &RoutingTable::empty());
        let second = build(2, "http://127.0.0.1:1/a", &first);
        let (a1, leader1) = endpoints(&first);
        let (a2, leader2) = endpoints(&second);
        assert!(Arc::ptr_eq(&a1, &a2) && Arc::ptr_eq(&leader1, &leader2));
        // A new URL is a new endpoint: connections to the old one are not reused.
        let third = build(3, "http://127.0.0.1:1/moved", &second);
        let (a3, leader3) = endpoints(&third);
        assert!(!Arc::ptr_eq(&a2, &a3) && Arc::ptr_eq(&leader2, &leader3));
        assert_eq!(a3.url(), "http://127.0.0.1:1/moved");
    }

    #[test]
    fn carries_histograms_and_counters_across_snapshots() {
        let first = RoutingTable::build(
            meta(1),
            model(
                vec![upstream("a", "eu", UpstreamState::Healthy, 90)],
                Some("http://127.0.0.1:2"),
            ),
            "eu",
            &RoutingTable::empty(),
        )
        .unwrap();
        let n1 = first.network("eth").unwrap().clone();
        n1.upstreams[0].latency.observe_us(10);
        let second = RoutingTable::build(
            meta(2),
            model(
                vec![
                    upstream("a", "eu", UpstreamState::Failing, 10),
                    upstream("b", "eu", UpstreamState::Healthy, 90),
                ],
                Some("http://127.0.0.1:2"),
            ),
            "eu",
            &first,
        )
        .unwrap();
        let n2 = second.network("eth").unwrap();
        assert!(Arc::ptr_eq(
            &n1.upstreams[0].latency,
            &n2.upstreams[0].latency
        ));
        assert_eq!(n2.upstreams[0].latency.count(), 1);
        assert_eq!(n2.upstreams[1].latency.count(), 0);
        assert!(Arc::ptr_eq(&n1.requests, &n2.requests));
        assert!(Arc::ptr_eq(&n1.stats, &n2.stats));
        assert!(Arc::ptr_eq(
            &n1.upstreams[0].runtime,
            &n2.upstreams[0].runtime
        ));
        assert!(!Arc::ptr_eq(
            &n1.upstreams[0].runtime,
            &n2.upstreams[1].runtime
        ));
        assert!(Arc::ptr_eq(
            &n1.leader.as_ref().unwrap().latency,
            &n2.leader.as_ref().unwrap().latency
        ));
    }
}
