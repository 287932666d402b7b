//! Phase: the one structured log line per request.
//!
//! Emitted as a `tracing` event at target `meridian::access`, so the JSON
//! log format (`--log-format json`) writes it as one JSON object per line,
//! and operators can filter it alone (`RUST_LOG=meridian::access=info`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderValue, StatusCode};

use crate::balance::Priority;
use crate::routing::RoutedNetwork;

/// The `tracing` target of access log lines.
pub const TARGET: &str = "meridian::access";

/// The fields of one request's log line, filled in as phases learn them.
#[derive(Debug)]
pub struct AccessLog {
    pub started: Instant,
    /// `x-request-id`, taken only when the line is written ([`AccessLog::on`]):
    /// a generated id's first clone allocates.
    pub request_id: Option<HeaderValue>,
    /// The network, once known (shared, not copied: its id is read when
    /// the line is written).
    pub network: Option<Arc<RoutedNetwork>>,
    /// The method of a single call, `batch` for a batch, empty before
    /// parsing (and when the line is not written: see [`AccessLog::on`]).
    pub method: String,
    /// Whether the line will be written (the `meridian::access` target is
    /// on): what only the line needs is not gathered otherwise.
    pub on: bool,
    /// Elements of a batch (1 for a single call, 0 before parsing).
    pub batch_size: usize,
    pub priority: Priority,
    pub request_bytes: usize,
    pub response_bytes: usize,
    pub status: StatusCode,
    /// `x-handled-by`.
    pub upstream: Option<HeaderValue>,
    /// `x-rejected-by`, `None` when nothing was refused.
    pub rejected_by: Option<HeaderValue>,
    /// `x-cache` (`HIT`, `MISS`, batch counts), `None` when nothing was
    /// cacheable.
    pub cache: Option<HeaderValue>,
    pub tries: u32,
    pub hedged: bool,
    pub queue_wait: Duration,
}

impl AccessLog {
    /// A line for a request that arrived at `started` with `request_id`.
    pub fn new(started: Instant, request_id: &HeaderValue, priority: Priority) -> Self {
        let on = tracing::enabled!(target: TARGET, tracing::Level::INFO);
        Self {
            started,
            request_id: on.then(|| request_id.clone()),
            network: None,
            method: String::new(),
            on,
            batch_size: 0,
            priority,
            request_bytes: 0,
            response_bytes: 0,
            status: StatusCode::OK,
            upstream: None,
            rejected_by: None,
            cache: None,
            tries: 0,
            hedged: false,
            queue_wait: Duration::ZERO,
        }
    }

    /// Writes the line. Strings are passed as `&str` (not `%` Display) so
    /// the log format copies them instead of going through `core::fmt`.
    pub fn emit(&self) {
        tracing::info!(
            target: TARGET,
            request_id = text(self.request_id.as_ref()),
            network = self.network.as_ref().map_or("", |n| n.id.as_str()),
            method = self.method.as_str(),
            batch_size = self.batch_size,
            status = self.status.as_u16(),
            duration_us = micros(self.started.elapsed()),
            upstream = text(self.upstream.as_ref()),
            rejected_by = text(self.rejected_by.as_ref()),
            cache = text(self.cache.as_ref()),
            tries = self.tries,
            hedged = self.hedged,
            queue_wait_us = micros(self.queue_wait),
            priority = self.priority.as_str(),
            request_bytes = self.request_bytes,
            response_bytes = self.response_bytes,
            "request"
        );
    }
}

/// Whole microseconds: an integer field, exact and cheap to write.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A header value as log text (empty when absent or not ASCII).
fn text(v: Option<&HeaderValue>) -> &str {
    v.and_then(|v| v.to_str().ok()).unwrap_or_default()
}
