//! What each data plane learns about its upstreams on its own, and how it
//! shares them between requests.
//!
//! - [`ejection`]: passive outlier ejection (consecutive failures eject an
//!   upstream locally for a doubling cool-down; one half-open trial decides).
//! - [`concurrency`]: the per-upstream concurrency limit with bounded
//!   priority queues.
//! - [`priority`]: the priority class of a request, from its headers.
//! - [`latency`]: the observed latency quantiles hedging derives its delay from.
//! - [`runtime`]: the per-upstream bundle of the above, carried across
//!   snapshots by (network, upstream id) like the latency histograms.
//!
//! None of this ever reaches the control plane's view: a local ejection
//! changes only this data plane's choices.

pub mod clock;
pub mod concurrency;
pub mod ejection;
pub mod latency;
pub mod priority;
pub mod runtime;

pub use concurrency::{Limiter, Permit, QueueError};
pub use ejection::{Admission, Ejection, EjectionTimes, TryKind};
pub use latency::LatencyQuantiles;
pub use priority::{Priority, PriorityHeaders};
pub use runtime::UpstreamRuntime;
