//! The data plane's side of the snapshot protocol.
//!
//! - [`client`]: the `SnapshotService.Stream` client: Hello, then Ack or
//!   Nack for every snapshot; reconnects forever with backoff.
//! - [`apply`]: validation of a snapshot and the atomic swap of the table.
//! - [`persist`]: the last applied snapshot on disk, so a restart without a
//!   control plane serves at once.

pub mod apply;
pub mod client;
pub mod persist;

pub use apply::{Applier, ApplyError};
pub use client::ControlClient;
pub use persist::{LoadError, SnapshotFile};
