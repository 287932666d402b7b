//! Upstream health: probing nodes, judging the answers, scoring them.
//!
//! - [`probe`]: one probe of one node (head height, chain id, latency).
//! - [`judge`]: turns a probe round into per-upstream observations
//!   (reference height, expected chain id).
//! - [`hysteresis`]: state flips only after N consecutive observations.
//! - [`score`]: 0–100 from lag and latency.
//! - [`prober`]: the per-network task that runs probe rounds.

pub mod hysteresis;
pub mod judge;
pub mod probe;
pub mod prober;
pub mod score;

pub use hysteresis::{Hysteresis, Observation};
pub use probe::{ProbeAnswer, ProbeOutcome};
