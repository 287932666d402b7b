//! The routing snapshot: the one resource the control plane streams.
//!
//! [`model`] holds the domain types both planes work with ([`policy`]: the
//! request policy, declared once); [`wire`] converts
//! them to and from the protobuf messages, validating on the way in;
//! [`hash`] computes the content hash that makes duplicate pushes cheap to
//! detect; [`payload`] compresses the table once per version and inflates it
//! with a cap.

mod hash;
mod model;
mod payload;
mod policy;
mod version;
mod wire;

pub use hash::content_hash;
pub use model::{
    CacheSettings, Network, NetworkPolicy, Role, RoutingTable, Upstream, UpstreamState,
    ValidationError, valid_host_name, valid_network_id, valid_upstream_id,
};
pub use payload::{PayloadError, gzip_table, inflate_table};
pub use version::Version;
pub use wire::{decode_role, decode_table, encode_role, encode_state, encode_table};
