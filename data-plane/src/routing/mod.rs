//! The routing table a data plane serves from, and upstream selection.
//!
//! [`table`] turns a validated snapshot into ready-to-use runtime objects
//! (parsed URIs, pre-rendered header values, histograms); [`select`] picks
//! an upstream for one try without locking or allocating.

pub mod select;
pub mod table;

pub use select::{Candidate, Tried, select, select_where};
pub use table::{BuildError, RoutedNetwork, RoutedUpstream, RoutingTable, SnapshotMeta};
