//! Meridian's test kit: what every test of either plane, the end-to-end
//! suite and the sandbox use to play the nodes and the client. It depends on
//! neither plane, so the planes' own tests can use it too.
//!
//! - [`server`]: the HTTP side every mock node shares (listen, faults,
//!   per-method counters, kill and restart on the same port).
//! - [`evm`]: a mock EVM node (heights, chain id, finality, receipts, forks).
//! - [`icon`]: a mock ICON (goloop) node (`/api/v3`, blocks, network info,
//!   transactions, the P-Rep list).
//! - [`rpc`]: a JSON-RPC-over-HTTP client returning status, headers and body.
//! - [`poll`]: `eventually`, the one way tests wait.

pub mod evm;
pub mod icon;
pub mod poll;
pub mod rpc;
pub mod server;
