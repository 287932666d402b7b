//! Meridian's control plane: probes upstream nodes, builds versioned routing
//! snapshots and streams them to the data planes over gRPC.
//!
//! - [`config`]: `control.toml`, validated with file/line/field errors.
//! - [`store`]: what survives a restart (sled).
//! - [`inventory`]: the networks and upstreams known now, with their health.
//! - [`health`]: probes, hysteresis and scores.
//! - [`snapshot`]: building and publishing routing snapshots.
//! - [`distribute`]: `SnapshotService`, the per-data-plane streams.
//! - [`admin`]: `AdminService`, the operator API.
//! - [`http`]: `/health`, `/ready`, `/metrics`.
//! - [`app`]: wiring of all the above.
//! - [`ctl`]: the `meridianctl` client.

pub mod admin;
pub mod app;
pub mod config;
pub mod ctl;
pub mod distribute;
pub mod health;
pub mod http;
pub mod inventory;
pub mod snapshot;
pub mod store;
