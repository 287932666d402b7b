//! Routing snapshots: building them from the inventory and publishing them.
//!
//! - [`builder`]: a deterministic routing table from the inventory's routed
//!   views (networks and upstreams sorted by id).
//! - [`publisher`]: debounced publication, a new version only when the
//!   content hash changed, each version encoded once.
//! - [`heights`]: the networks' heights, streamed apart from snapshots after
//!   every probe round that moved them.

pub mod builder;
pub mod heights;
pub mod publisher;

pub use heights::{HeightsBoard, PublishedHeights};
pub use publisher::{Published, Publisher};
