//! Phase: where each call goes.
//!
//! The chain module in `common` says which methods write; the network's
//! policy and head height say when a read is for archive upstreams:
//! - a write goes to `write` upstreams (and may be broadcast when the chain
//!   says the method can be);
//! - a read on `POST /<network>/archive` goes to `archive` upstreams;
//! - a read that names a block more than `archive_after_blocks` below the
//!   network's head (or `earliest`) goes to `archive` upstreams too
//!   (`archive_after_blocks = 0` turns this off);
//! - every other read goes to `read` upstreams.
//!
//! Subscriptions over HTTP are left to the node to refuse; they route like
//! reads.

use meridian_common::chain::{BlockRef, MethodClass};
use meridian_common::snapshot::Role;

use super::parse::Call;
use crate::routing::RoutedNetwork;

/// Which upstreams a call may be sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    Read,
    Archive,
    /// A write; `broadcast` when it may go to several write upstreams.
    Write {
        broadcast: bool,
    },
}

impl Route {
    /// The upstream role this route needs.
    pub fn role(self) -> Role {
        match self {
            Self::Read => Role::Read,
            Self::Archive => Role::Archive,
            Self::Write { .. } => Role::Write,
        }
    }

    /// Writes are never retried blindly nor hedged.
    pub fn is_write(self) -> bool {
        matches!(self, Self::Write { .. })
    }

    /// Label for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Archive => "archive",
            Self::Write { .. } => "write",
        }
    }
}

/// The route of `call` on `network`; `archive_path` when the client
/// posted to `/<network>/archive`.
pub fn route(network: &RoutedNetwork, archive_path: bool, call: &Call<'_>) -> Route {
    let chain = network.chain.chain();
    match chain.method_class(&call.method) {
        MethodClass::Write => Route::Write {
            broadcast: chain.broadcastable(&call.method),
        },
        MethodClass::Read | MethodClass::Subscribe => {
            if archive_path || is_old(network, chain.block_ref(&call.method, call.params)) {
                Route::Archive
            } else {
                Route::Read
            }
        }
    }
}

fn is_old(network: &RoutedNetwork, block: Option<BlockRef>) -> bool {
    let after = network.policy.archive_after_blocks;
    if after == 0 {
        return false;
    }
    let number = match block {
        Some(BlockRef::Number(n)) => n,
        Some(BlockRef::Earliest) => 0,
        _ => return false,
    };
    network.heights.head().saturating_sub(number) > after
}

#[cfg(test)]
mod tests {
    use meridian_common::snapshot::UpstreamState;

    use super::*;
    use crate::proxy::parse::{Parsed, parse};
    use crate::routing::table::tests::{model, upstream};
    use crate::routing::{RoutingTable, SnapshotMeta};

    fn network(archive_after_blocks: u64) -> RoutingTable {
        let mut a = upstream("a", "eu", UpstreamState::Healthy, 1);
        a.head_height = 1_000;
        let mut m = model(vec![a], None);
        m.networks[0].policy.archive_after_blocks = archive_after_blocks;
        RoutingTable::build(SnapshotMeta::default(), m, "eu", &RoutingTable::empty()).unwrap()
    }

    fn route_of(t: &RoutingTable, archive_path: bool, body: &str) -> Route {
        let Parsed::Single(call) = parse(body.as_bytes(), 10).unwrap() else {
            panic!()
        };
        route(t.network("eth").unwrap(), archive_path, &call)
    }

    #[test]
    fn writes_reads_and_archive() {
        let t = network(100);
        let send =
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["0x00"]}"#;
        assert_eq!(route_of(&t, false, send), Route::Write { broadcast: true });
        let send = r#"{"jsonrpc":"2.0","id":1,"method":"eth_sendTransaction","params":[{}]}"#;
        assert_eq!(route_of(&t, false, send), Route::Write { broadcast: false });
        let balance = |block: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0x00","{block}"]}}"#
            )
        };
        assert_eq!(route_of(&t, false, &balance("latest")), Route::Read);
        assert_eq!(route_of(&t, true, &balance("latest")), Route::Archive);
        // head 1000, 100 blocks allowed: 900 is recent, 899 is old.
        assert_eq!(route_of(&t, false, &balance("0x384")), Route::Read);
        assert_eq!(route_of(&t, false, &balance("0x383")), Route::Archive);
        assert_eq!(route_of(&t, false, &balance("earliest")), Route::Archive);
        // Turned off.
        assert_eq!(route_of(&network(0), false, &balance("0x0")), Route::Read);
    }
}
