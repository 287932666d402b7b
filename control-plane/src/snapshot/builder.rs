//! Builds the routing table from the inventory.
//!
//! Deterministic: the inventory keeps networks and upstreams in sorted maps,
//! and only routed views (not the live measurements) go in, so equal routing
//! content gives equal bytes and an equal content hash.

use std::collections::BTreeMap;

use meridian_common::snapshot::{Network, RoutingTable, Upstream};

use crate::inventory::NetworkState;

/// The routing table of `networks`, stamped `generated_at_unix_ms`.
pub fn build(networks: &BTreeMap<String, NetworkState>, generated_at_unix_ms: u64) -> RoutingTable {
    RoutingTable {
        networks: networks
            .iter()
            .map(|(id, n)| Network {
                id: id.clone(),
                chain: n.config.chain,
                leader_url: n.config.leader.clone(),
                hosts: n.config.hosts.clone(),
                upstreams: n
                    .upstreams
                    .values()
                    .map(|u| {
                        let r = u.routed();
                        Upstream {
                            id: u.spec.id.clone(),
                            url: u.spec.url.clone(),
                            region: u.spec.region.clone(),
                            weight: u.spec.weight,
                            roles: u.spec.roles.clone(),
                            state: r.state,
                            head_height: r.measures.head_height,
                            lag: r.measures.lag,
                            latency_ewma_us: r.measures.latency_ewma_us,
                            score: r.measures.score,
                            reason: r.reason.clone(),
                        }
                    })
                    .collect(),
                policy: n.config.policy(),
                cache: n.config.cache.clone(),
            })
            .collect(),
        generated_at_unix_ms,
    }
}
