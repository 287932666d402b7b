//! Phase: which network a request is for, and whether it is a request at all.
//!
//! Clients POST to `/<network-id>` (one trailing slash tolerated), or to
//! `/<network-id>/archive` to send every read to archive upstreams. An unknown
//! network is HTTP 404, any other HTTP method HTTP 405 (with `allow: POST`),
//! and before the first snapshot is loaded every request is HTTP 503: the
//! data plane cannot know any network yet.

use std::sync::Arc;

use http::{Method, StatusCode};
use meridian_common::jsonrpc;

use super::reply::ErrorReply;
use crate::routing::{RoutedNetwork, RoutingTable};

/// Longest network id quoted back in an error message.
const MAX_QUOTED: usize = 128;

/// Path suffix that sends reads to archive upstreams.
pub const ARCHIVE_SUFFIX: &str = "/archive";

/// The network addressed by `path`, and whether the archive path was used.
pub fn resolve<'t>(
    table: &'t RoutingTable,
    path: &str,
) -> Result<(&'t Arc<RoutedNetwork>, bool), ErrorReply> {
    if !table.is_loaded() {
        return Err(ErrorReply::rejected(
            StatusCode::SERVICE_UNAVAILABLE,
            jsonrpc::RESOURCE_UNAVAILABLE,
            "unavailable",
            "no routing snapshot loaded yet: the control plane has not been reached",
        ));
    }
    let id = path.strip_prefix('/').unwrap_or(path);
    let id = id.strip_suffix('/').unwrap_or(id);
    let (id, archive) = match id.strip_suffix(ARCHIVE_SUFFIX) {
        Some(id) => (id, true),
        None => (id, false),
    };
    table.network(id).map(|n| (n, archive)).ok_or_else(|| {
        let quoted: String = id.chars().take(MAX_QUOTED).collect();
        ErrorReply::rejected(
            StatusCode::NOT_FOUND,
            jsonrpc::METHOD_NOT_FOUND,
            "network",
            format!("unknown network {quoted:?}: POST to /<network-id>"),
        )
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
        RoutingTable::build(
            SnapshotMeta {
                version: Version { epoch: 1, seq: 1 },
                content_hash: String::new(),
            },
            model(vec![upstream("a", "eu", UpstreamState::Healthy, 1)], None),
            "eu",
            &RoutingTable::empty(),
        )
        .unwrap()
    }

    #[test]
    fn finds_networks_by_path() {
        let t = table();
        assert_eq!(resolve(&t, "/eth").unwrap().0.id, "eth");
        assert!(!resolve(&t, "/eth/").unwrap().1);
        let (n, archive) = resolve(&t, "/eth/archive").unwrap();
        assert_eq!((n.id.as_str(), archive), ("eth", true));
        assert!(resolve(&t, "/eth/archive/").unwrap().1);
        let e = resolve(&t, "/btc").unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.rejected_by, Some("network"));
        assert!(resolve(&t, "/eth/pruned").is_err());
        assert!(resolve(&t, "/archive").is_err());
        assert!(resolve(&t, "/").is_err());
    }

    #[test]
    fn nothing_routes_before_a_snapshot() {
        let e = resolve(&RoutingTable::empty(), "/eth").unwrap_err();
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
