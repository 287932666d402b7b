//! Distribution: `SnapshotService.Stream`, one stream per data plane.
//!
//! - [`codec`]: sends the publisher's once-encoded bytes plus a per-push
//!   nonce, without re-encoding the snapshot per stream.
//! - [`session`]: the rules of one stream (no resend to an up-to-date
//!   Hello, nonces, ACK/NACK bookkeeping, parking after a NACK), as plain
//!   logic without I/O.
//! - [`registry`]: what is known about each data plane (persisted).
//! - [`service`]: the gRPC service that runs sessions on real streams.

pub mod codec;
pub mod registry;
pub mod service;
pub mod session;

pub use registry::DataPlanes;
pub use service::{SnapshotServer, SnapshotStreams};
