//! Phase: which network a request is for, and whether it is a request at all.
//!
//! On the shared listener clients POST to `/<network-id>`, and the rest of
//! the path is the network's chain's to judge ([`Chain::path_route`]): EVM
//! `/<network-id>/archive` sends every read to archive upstreams, ICON
//! `/<network-id>/api/v3/<channel>` is sent to that path on the node. On a
//! listener bound to one network (`--network-listen`) every request is for
//! that network and the whole path is the chain's: clients that only speak
//! to the root of an address (ICON's iconsdk) work there. An unknown network
//! or a path its chain does not serve is HTTP 404, any other HTTP method
//! HTTP 405, and before the first snapshot is loaded every request is HTTP
//! 503: the data plane cannot know any network yet.
//!
//! [`Chain::path_route`]: meridian_common::chain::Chain::path_route

use std::sync::Arc;

use http::{Method, StatusCode};
use meridian_common::chain::PathRoute;
use meridian_common::jsonrpc;

use super::reply::ErrorReply;
use crate::routing::{RoutedNetwork, RoutingTable};

/// Longest network id quoted back in an error message.
const MAX_QUOTED: usize = 128;

/// Where a request is going.
#[derive(Debug)]
pub struct Resolved<'t, 'p> {
    pub network: &'t Arc<RoutedNetwork>,
    /// What the path after the network asks.
    pub route: PathRoute,
    /// That path (empty when there is none).
    pub rest: &'p str,
}

/// The network a request on a listener bound to `bound` (or the shared
/// one, `None`) for `host` with `path` is for, and what the rest of the
/// path asks.
pub fn resolve<'t, 'p>(
    table: &'t RoutingTable,
    bound: Option<&str>,
    host: Option<&str>,
    path: &'p str,
) -> Result<Resolved<'t, 'p>, ErrorReply> {
    if !table.is_loaded() {
        return Err(ErrorReply::rejected(
            StatusCode::SERVICE_UNAVAILABLE,
            jsonrpc::RESOURCE_UNAVAILABLE,
            "unavailable",
            "no routing snapshot loaded yet: the control plane has not been reached",
        ));
    }
    let at_host = || host.and_then(|h| table.network_at_host(h));
    let (id, rest) = match bound {
        Some(id) => (id, path),
        // A network served at the host the client named: the whole path is
        // its chain's.
        None if let Some(network) = at_host() => (network.id.as_str(), path),
        None => {
            let id = path.strip_prefix('/').unwrap_or(path);
            id.split_once('/')
                .map_or((id, ""), |(id, _)| (id, &path[1 + id.len()..]))
        }
    };
    let network = table.network(id).ok_or_else(|| {
        let quoted: String = id.chars().take(MAX_QUOTED).collect();
        let message = match bound {
            Some(_) => format!("network {quoted:?} of this listener is not in the routing table"),
            None => format!("unknown network {quoted:?}: POST to /<network-id>"),
        };
        ErrorReply::rejected(
            StatusCode::NOT_FOUND,
            jsonrpc::METHOD_NOT_FOUND,
            "network",
            message,
        )
    })?;
    let route = network.chain.chain().path_route(rest).ok_or_else(|| {
        let quoted: String = rest.chars().take(MAX_QUOTED).collect();
        ErrorReply::rejected(
            StatusCode::NOT_FOUND,
            jsonrpc::METHOD_NOT_FOUND,
            "path",
            format!(
                "{quoted:?} is not a path of network {:?} ({} chain)",
                network.id, network.chain
            ),
        )
    })?;
    Ok(Resolved {
        network,
        route,
        rest,
    })
}

/// Only POST carries JSON-RPC.
pub fn accept_method(method: &Method) -> Result<(), ErrorReply> {
    if method == Method::POST {
        Ok(())
    } else {
        Err(ErrorReply::rejected(
            StatusCode::METHOD_NOT_ALLOWED,
            jsonrpc::INVALID_REQUEST,
            // Not "method": that names the JSON-RPC method policy (issue 3).
            "http-method",
            format!("HTTP {method} is not supported: POST a JSON-RPC request"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use meridian_common::snapshot::{UpstreamState, Version};

    use super::*;
    use crate::routing::SnapshotMeta;
    use crate::routing::table::tests::{model, upstream};

    fn table() -> RoutingTable {
        let mut model = model(vec![upstream("a", "eu", UpstreamState::Healthy, 1)], None);
        model.networks[0].hosts = vec!["eth.example.org".into()];
        RoutingTable::build(
            SnapshotMeta {
                version: Version { epoch: 1, seq: 1 },
                content_hash: String::new(),
            },
            model,
            "eu",
            &RoutingTable::empty(),
        )
        .unwrap()
    }

    #[test]
    fn a_network_served_at_a_host_name_gets_the_whole_path() {
        let t = table();
        for host in [
            "eth.example.org",
            "ETH.Example.org:8545",
            "eth.example.org:80",
        ] {
            let r = resolve(&t, None, Some(host), "/archive").unwrap();
            assert_eq!(
                (r.network.id.as_str(), r.route.archive),
                ("eth", true),
                "{host}"
            );
            assert!(resolve(&t, None, Some(host), "/").is_ok(), "{host}");
        }
        // Another host: the path names the network, as always.
        assert_eq!(
            resolve(&t, None, Some("other.example.org"), "/eth")
                .unwrap()
                .network
                .id,
            "eth"
        );
        assert!(resolve(&t, None, Some("127.0.0.1:8545"), "/").is_err());
        // A bound listener wins over the host.
        assert!(resolve(&t, Some("btc"), Some("eth.example.org"), "/").is_err());
    }

    #[test]
    fn finds_networks_by_path() {
        let t = table();
        let archive = |path| resolve(&t, None, None, path).unwrap().route.archive;
        assert_eq!(resolve(&t, None, None, "/eth").unwrap().network.id, "eth");
        assert!(!archive("/eth/"));
        let r = resolve(&t, None, None, "/eth/archive").unwrap();
        assert_eq!(
            (r.network.id.as_str(), r.route.archive, r.rest),
            ("eth", true, "/archive")
        );
        assert!(archive("/eth/archive/"));
        let e = resolve(&t, None, None, "/btc").unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.rejected_by, Some("network"));
        let e = resolve(&t, None, None, "/eth/pruned").unwrap_err();
        assert_eq!(e.rejected_by, Some("path"), "not an EVM path");
        assert!(resolve(&t, None, None, "/archive").is_err());
        assert!(resolve(&t, None, None, "/").is_err());
    }

    #[test]
    fn a_bound_listener_gives_the_whole_path_to_its_network() {
        let t = table();
        assert_eq!(
            resolve(&t, Some("eth"), None, "/").unwrap().network.id,
            "eth"
        );
        assert!(
            resolve(&t, Some("eth"), None, "/archive")
                .unwrap()
                .route
                .archive
        );
        let e = resolve(&t, Some("eth"), None, "/eth").unwrap_err();
        assert_eq!(e.rejected_by, Some("path"), "no network prefix there");
        let e = resolve(&t, Some("btc"), None, "/").unwrap_err();
        assert_eq!(e.rejected_by, Some("network"));
    }

    #[test]
    fn nothing_routes_before_a_snapshot() {
        let e = resolve(&RoutingTable::empty(), None, None, "/eth").unwrap_err();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn only_post() {
        assert!(accept_method(&Method::POST).is_ok());
        assert_eq!(
            accept_method(&Method::GET).unwrap_err().status,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            accept_method(&Method::GET).unwrap_err().rejected_by,
            Some("http-method")
        );
    }
}
