//! Conversion between the routing-table model and its protobuf messages.
//!
//! Encoding cannot fail. Decoding validates everything a data plane relies
//! on; a table that fails here is NACKed and never applied.

use std::collections::HashSet;

use super::model::{
    CacheSettings, Network, NetworkPolicy, Role, RoutingTable, Upstream, UpstreamState,
    ValidationError, valid_host_name, valid_network_id, valid_upstream_id,
};
use crate::chain::ChainKind;
use crate::proto;
use crate::url::parse_node_url;

/// The model as protobuf.
pub fn encode_table(table: &RoutingTable) -> proto::RoutingTable {
    proto::RoutingTable {
        networks: table.networks.iter().map(encode_network).collect(),
        generated_at_unix_ms: table.generated_at_unix_ms,
    }
}

fn encode_network(n: &Network) -> proto::Network {
    proto::Network {
        id: n.id.clone(),
        chain: n.chain.as_str().to_owned(),
        leader_url: n.leader_url.clone().unwrap_or_default(),
        hosts: n.hosts.clone(),
        upstreams: n.upstreams.iter().map(encode_upstream).collect(),
        policy: Some(n.policy.encode()),
        cache: Some(n.cache.encode()),
    }
}

/// Protobuf state value of a model state.
pub fn encode_state(s: UpstreamState) -> proto::UpstreamState {
    match s {
        UpstreamState::Healthy => proto::UpstreamState::Healthy,
        UpstreamState::Lagging => proto::UpstreamState::Lagging,
        UpstreamState::Failing => proto::UpstreamState::Failing,
        UpstreamState::Quarantined => proto::UpstreamState::Quarantined,
    }
}

/// Protobuf role value of a model role.
pub fn encode_role(r: Role) -> proto::Role {
    match r {
        Role::Read => proto::Role::Read,
        Role::Write => proto::Role::Write,
        Role::Archive => proto::Role::Archive,
    }
}

/// Model role of a protobuf role value; `None` for unset or unknown values.
pub fn decode_role(value: i32) -> Option<Role> {
    match proto::Role::try_from(value) {
        Ok(proto::Role::Read) => Some(Role::Read),
        Ok(proto::Role::Write) => Some(Role::Write),
        Ok(proto::Role::Archive) => Some(Role::Archive),
        _ => None,
    }
}

fn encode_upstream(u: &Upstream) -> proto::Upstream {
    proto::Upstream {
        id: u.id.clone(),
        url: u.url.clone(),
        region: u.region.clone(),
        weight: u.weight,
        state: encode_state(u.state).into(),
        head_height: u.head_height,
        lag: u.lag,
        latency_ewma_us: u.latency_ewma_us,
        score: u.score,
        reason: u.reason.clone(),
        roles: u.roles.iter().map(|r| encode_role(*r).into()).collect(),
    }
}

/// The protobuf table as the model, validated.
pub fn decode_table(table: proto::RoutingTable) -> Result<RoutingTable, ValidationError> {
    let mut seen = HashSet::with_capacity(table.networks.len());
    let mut hosts: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut networks = Vec::with_capacity(table.networks.len());
    for n in table.networks {
        if !seen.insert(n.id.clone()) {
            return Err(ValidationError::DuplicateNetwork(n.id));
        }
        for host in &n.hosts {
            if let Some(first) = hosts.insert(host.clone(), n.id.clone()) {
                return Err(ValidationError::DuplicateHost {
                    host: host.clone(),
                    first,
                    second: n.id.clone(),
                });
            }
        }
        networks.push(decode_network(n)?);
    }
    Ok(RoutingTable {
        networks,
        generated_at_unix_ms: table.generated_at_unix_ms,
    })
}

fn decode_network(n: proto::Network) -> Result<Network, ValidationError> {
    if !valid_network_id(&n.id) {
        return Err(ValidationError::BadNetworkId(n.id));
    }
    let chain: ChainKind = n.chain.parse().map_err(|_| ValidationError::UnknownChain {
        network: n.id.clone(),
        chain: n.chain.clone(),
    })?;
    let leader_url = if n.leader_url.is_empty() {
        None
    } else {
        parse_node_url(&n.leader_url).map_err(|error| ValidationError::BadLeader {
            network: n.id.clone(),
            error,
        })?;
        Some(n.leader_url)
    };
    let policy = NetworkPolicy::decode(n.policy.unwrap_or_default()).map_err(|what| {
        ValidationError::BadPolicy {
            network: n.id.clone(),
            what,
        }
    })?;
    let cache = CacheSettings::decode(n.cache.unwrap_or_default()).map_err(|what| {
        ValidationError::BadPolicy {
            network: n.id.clone(),
            what: format!("cache: {what}"),
        }
    })?;
    if let Some(host) = n.hosts.iter().find(|h| !valid_host_name(h)) {
        return Err(ValidationError::BadHost {
            network: n.id.clone(),
            host: host.clone(),
        });
    }
    let mut seen = HashSet::with_capacity(n.upstreams.len());
    let mut upstreams = Vec::with_capacity(n.upstreams.len());
    for u in n.upstreams {
        if !seen.insert(u.id.clone()) {
            return Err(ValidationError::DuplicateUpstream {
                network: n.id,
                id: u.id,
            });
        }
        upstreams.push(decode_upstream(&n.id, u)?);
    }
    Ok(Network {
        id: n.id,
        chain,
        leader_url,
        upstreams,
        policy,
        cache,
        hosts: n.hosts,
    })
}

fn decode_upstream(network: &str, u: proto::Upstream) -> Result<Upstream, ValidationError> {
    let bad = |what: String| ValidationError::BadUpstream {
        network: network.to_owned(),
        id: u.id.clone(),
        what,
    };
    if !valid_upstream_id(&u.id) {
        return Err(ValidationError::BadUpstreamId {
            network: network.to_owned(),
            id: u.id,
        });
    }
    parse_node_url(&u.url).map_err(|error| ValidationError::BadUpstreamUrl {
        network: network.to_owned(),
        id: u.id.clone(),
        error,
    })?;
    if u.weight == 0 {
        return Err(bad("weight must be at least 1".into()));
    }
    if u.score > 100 {
        return Err(bad(format!("score {} is over 100", u.score)));
    }
    let state = match proto::UpstreamState::try_from(u.state) {
        Ok(proto::UpstreamState::Healthy) => UpstreamState::Healthy,
        Ok(proto::UpstreamState::Lagging) => UpstreamState::Lagging,
        Ok(proto::UpstreamState::Failing) => UpstreamState::Failing,
        Ok(proto::UpstreamState::Quarantined) => UpstreamState::Quarantined,
        _ => return Err(bad(format!("unknown state {}", u.state))),
    };
    let mut roles = Vec::with_capacity(u.roles.len().max(2));
    for r in &u.roles {
        roles.push(decode_role(*r).ok_or_else(|| bad(format!("unknown role {r}")))?);
    }
    if roles.is_empty() {
        roles.extend(Role::DEFAULT);
    }
    roles.sort_unstable();
    roles.dedup();
    Ok(Upstream {
        id: u.id,
        url: u.url,
        region: u.region,
        weight: u.weight,
        roles,
        state,
        head_height: u.head_height,
        lag: u.lag,
        latency_ewma_us: u.latency_ewma_us,
        score: u.score,
        reason: u.reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RoutingTable {
        RoutingTable {
            networks: vec![Network {
                id: "eth-local".into(),
                chain: ChainKind::Evm,
                leader_url: Some("http://127.0.0.1:8549".into()),
                hosts: vec!["eth.example.org".into()],
                upstreams: vec![Upstream {
                    id: "a".into(),
                    url: "http://127.0.0.1:18545".into(),
                    region: "eu".into(),
                    weight: 1,
                    roles: vec![Role::Read, Role::Write],
                    state: UpstreamState::Healthy,
                    head_height: 100,
                    lag: 0,
                    latency_ewma_us: 900,
                    score: 97,
                    reason: String::new(),
                }],
                policy: NetworkPolicy::default(),
                cache: CacheSettings::default(),
            }],
            generated_at_unix_ms: 1,
        }
    }

    #[test]
    fn round_trips() {
        let t = sample();
        assert_eq!(decode_table(encode_table(&t)), Ok(t));
    }

    #[test]
    fn refuses_duplicates_and_junk() {
        let mut p = encode_table(&sample());
        p.networks.push(p.networks[0].clone());
        assert!(matches!(
            decode_table(p),
            Err(ValidationError::DuplicateNetwork(_))
        ));

        let mut p = encode_table(&sample());
        p.networks[0].upstreams[0].url = "nope".into();
        assert!(matches!(
            decode_table(p),
            Err(ValidationError::BadUpstreamUrl { .. })
        ));

        let mut p = encode_table(&sample());
        p.networks[0].chain = "martian".into();
        assert!(matches!(
            decode_table(p),
            Err(ValidationError::UnknownChain { .. })
        ));

        let mut p = encode_table(&sample());
        p.networks[0].upstreams[0].score = 101;
        assert!(matches!(
            decode_table(p),
            Err(ValidationError::BadUpstream { .. })
        ));

        let mut p = encode_table(&sample());
        p.networks[0].id = "a/b".into();
        assert!(matches!(
            decode_table(p),
            Err(ValidationError::BadNetworkId(_))
        ));
    }

    #[test]
    fn zero_policy_means_defaults_and_empty_roles_mean_read_write() {
        let mut p = encode_table(&sample());
        p.networks[0].policy = None;
        p.networks[0].upstreams[0].roles.clear();
        let t = decode_table(p).unwrap();
        assert_eq!(t.networks[0].policy, NetworkPolicy::default());
        assert_eq!(
            t.networks[0].upstreams[0].roles,
            vec![Role::Read, Role::Write]
        );
    }
}
