//! Meridian's data plane: a stateless JSON-RPC proxy that routes every client
//! request on the latest routing snapshot streamed by the control plane.
//!
//! - [`config`]: what a data plane needs to start ([`config::ProxyConfig`]).
//! - [`app`]: wiring and lifecycle ([`app::DataPlane`], [`app::run`]).
//! - [`control`]: the snapshot stream client, validation + apply, and the
//!   on-disk copy of the last applied snapshot.
//! - [`routing`]: the routing table built from a snapshot (behind one
//!   `ArcSwap`) and upstream selection.
//! - [`server`]: the client listener: an HTTP/1.1 fast path for JSON-RPC
//!   `POST`s, hyper for the rest of HTTP (HTTP/2, chunked, upgrades).
//! - [`proxy`]: the client request path, one small module per phase.
//! - [`upstream`]: the HTTP/1.1 client to upstream nodes, with a lock-free
//!   connection pool per upstream.
//! - [`balance`]: what the data plane learns on its own per upstream:
//!   ejection, concurrency limits and priority queues, latency quantiles.
//! - [`admin_http`]: `/health`, `/ready`, `/metrics`.
//! - [`metrics`]: lock-free request counters and their Prometheus rendering.

pub mod admin_http;
pub mod app;
pub mod balance;
pub mod cache;
pub mod config;
pub mod control;
pub mod metrics;
pub mod proxy;
pub mod routing;
pub mod server;
pub mod state;
pub mod upstream;
