//! The content hash of a routing table.
//!
//! SHA-256 over the length-delimited protobuf encoding of each network, in
//! order. `generated_at` is left out on purpose: two tables with the same
//! routing content hash the same, whenever they were built. Prost encodes our
//! messages deterministically (no maps), and the builder sorts networks and
//! upstreams, so equal content gives equal bytes.

use prost::Message;
use sha2::{Digest, Sha256};

use crate::proto;

/// Hex SHA-256 of the table's routing content.
pub fn content_hash(table: &proto::RoutingTable) -> String {
    let mut hasher = Sha256::new();
    let mut buf = Vec::with_capacity(1024);
    for network in &table.networks {
        buf.clear();
        // Length-delimited framing keeps the concatenation unambiguous.
        if network.encode_length_delimited(&mut buf).is_ok() {
            hasher.update(&buf);
        }
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(ids: &[&str], at: u64) -> proto::RoutingTable {
        proto::RoutingTable {
            networks: ids
                .iter()
                .map(|id| proto::Network {
                    id: (*id).into(),
                    chain: "evm".into(),
                    ..Default::default()
                })
                .collect(),
            generated_at_unix_ms: at,
        }
    }

    #[test]
    fn ignores_generation_time() {
        assert_eq!(
            content_hash(&table(&["a"], 1)),
            content_hash(&table(&["a"], 2))
        );
    }

    #[test]
    fn sees_content_and_order() {
        assert_ne!(
            content_hash(&table(&["a"], 1)),
            content_hash(&table(&["b"], 1))
        );
        assert_ne!(
            content_hash(&table(&["a", "b"], 1)),
            content_hash(&table(&["b", "a"], 1))
        );
        assert_ne!(
            content_hash(&table(&["ab"], 1)),
            content_hash(&table(&["a", "b"], 1))
        );
    }
}
