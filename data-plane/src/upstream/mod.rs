//! The HTTP/1.1 client the request path posts to upstream nodes with.
//!
//! Each try runs its exchange inside the request's own task: it takes an
//! idle connection from the upstream's lock-free pool (or opens one),
//! writes the request in one `write`, reads the answer into the
//! connection's buffer and gives the connection back. hyper's pooled
//! client hands every request to a separate connection task through
//! channels, keys its pool by a hashed string behind a mutex and builds
//! header maps both ways; measured with callgrind, that was about a third
//! of the proxy's user-space instructions per request (see
//! `docs/BENCHMARKS.md`). The control plane's probes still use hyper's
//! client ([`meridian_common::node_client`]): they are few.
//!
//! - [`endpoint`]: one upstream URL, its prepared request head and pool.
//! - [`pool`]: idle connections of one upstream.
//! - [`conn`]: one connection (TCP or rustls) and its read buffer.
//! - [`resolve`]: the host's addresses, cached for a TTL.
//! - [`request`]: the verb and path of a request (JSON-RPC posts to the
//!   URL; REST chains and ICON channels send the client's path).
//! - [`response`]: response head parsing and body framing, without I/O.
//! - [`exchange`]: one request and its answer.
//! - [`sweeper`]: closes idle connections nobody came back for.

pub mod conn;
pub mod endpoint;
pub mod exchange;
pub mod pool;
pub mod request;
pub mod resolve;
pub mod response;
pub mod sweeper;

pub use endpoint::{Endpoint, EndpointError};
pub use exchange::{Answer, ExchangeError, UpstreamClient};
pub use request::{RequestLine, UpstreamPath, Verb};
