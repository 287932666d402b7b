//! Meridian's end-to-end test kit: everything tests and the sandbox need to
//! run the real planes in-process against nodes whose behaviour they control.
//!
//! The mock nodes (one per chain kind), the JSON-RPC client and `eventually`
//! live in `meridian-test-kit`, which the planes' own tests use too.
//!
//! - [`ganache`]: installs and runs a real EVM node (ganache from npm).
//! - [`redis_server`]: a real `redis-server` per test, on a free port.
//! - [`install`]: installing a test's third-party tool once, atomically.
//! - [`python`]: the chains' Python client libraries (iconsdk) in a venv.
//! - [`harness`]: `control.toml` rendering and starting the planes in-process.
//! - [`fake_data_plane`]: a scripted `SnapshotService.Stream` client.
//! - [`sandbox`]: the whole deployment in one process (`meridian-sandbox`).
//! - [`bench`]: the benchmark harness (`meridian-bench`).

pub mod bench;
pub mod fake_data_plane;
pub mod ganache;
pub mod harness;
pub mod install;
pub mod python;
pub mod redis_server;
pub mod sandbox;
