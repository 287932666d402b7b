//! Routing snapshots: building them from the inventory and publishing them.
//!
//! - [`builder`]: a deterministic routing table from the inventory's routed
//!   views (networks and upstreams sorted by id).
//! - [`publisher`]: debounced publication, a new version only when the
//!   content hash changed, each version encoded once.

pub mod builder;
pub mod publisher;

pub use publisher::{Published, Publisher};
