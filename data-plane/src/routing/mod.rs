//! The routing table a data plane serves from, and upstream selection.
//!
//! [`table`] turns a validated snapshot into ready-to-use runtime objects
//! (parsed URIs, pre-rendered header values, histograms); [`select`] picks
//! an upstream for one try without locking or allocating; [`heights`] keeps
//! each network's head and finalized heights fresh between snapshots.

pub mod heights;
pub mod select;
pub mod table;

pub use heights::ChainHeights;
pub use select::{Candidate, Tried, select, select_where};
pub use table::{BuildError, RoutedNetwork, RoutedUpstream, RoutingTable, SnapshotMeta};
