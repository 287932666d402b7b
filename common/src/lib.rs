//! Meridian's shared domain: what both planes must agree on.
//!
//! - [`snapshot`]: the routing-table model, its validation, conversion to and
//!   from the wire format, and its content hash.
//! - [`chain`]: everything chain-specific (probes, method classes), one module
//!   per chain kind; no other crate branches on the chain.
//! - [`jsonrpc`]: JSON-RPC 2.0 error codes and error bodies.
//! - [`error_chain`]: one-line rendering of an error and its sources.
//! - [`config`]: TOML loading whose errors name the file, line and field.
//! - [`settings`]: blocks of per-network settings, each field declared once.
//! - [`telemetry`]: logs and OTLP trace export, set up the same way by every binary.
//! - [`log_format`]: the text log line, formatted cheaply.
//! - [`log_writer`]: stderr for log lines, written in blocks.
//! - [`listen`]: the one place listeners are bound (and where TLS will go).
//! - [`serve`]: the HTTP accept loop with graceful drain.
//! - [`node_client`]: the pooled HTTP(S) client to upstream nodes.
//! - [`metrics`]: lock-free counters/histograms and Prometheus text.

pub mod chain;
pub mod config;
pub mod error_chain;
pub mod jsonrpc;
pub mod listen;
pub mod log_format;
pub mod log_writer;
pub mod metrics;
pub mod node_client;
pub mod serve;
pub mod settings;
pub mod snapshot;
pub mod telemetry;
pub mod time;
pub mod url;

pub use meridian_proto::v1 as proto;
