//! Meridian's end-to-end test kit: everything tests and the sandbox need to
//! run the real planes in-process against nodes whose behaviour they control.
//!
//! - [`mock_evm`]: an in-process EVM node (heights, chain id, faults, kill/restart, counters).
//! - [`ganache`]: installs and runs a real EVM node (ganache from npm).
//! - [`redis_server`]: a real `redis-server` per test, on a free port.
//! - [`rpc`]: a JSON-RPC-over-HTTP client returning status, headers and body.
//! - [`poll`]: `eventually`, the one way tests wait.
//! - [`harness`]: `control.toml` rendering and starting the planes in-process.
//! - [`fake_data_plane`]: a scripted `SnapshotService.Stream` client.
//! - [`sandbox`]: the whole deployment in one process (`meridian-sandbox`).
//! - [`bench`]: the benchmark harness (`meridian-bench`).

pub mod bench;
pub mod fake_data_plane;
pub mod ganache;
pub mod harness;
pub mod mock_evm;
pub mod poll;
pub mod redis_server;
pub mod rpc;
pub mod sandbox;
