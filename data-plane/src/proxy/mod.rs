//! The client request path, one module per phase:
//!
//! ```text
//! request_id → network (route, POST only) → limits (body size) → parse
//!   → classify (read/write) → forward (select, deadline, retry, leader) → respond
//! ```
//!
//! [`pipeline`] strings the phases together for one request; [`server`]
//! serves it on the client listener. Each phase returns either its result
//! or an [`reply::ErrorReply`], which [`respond`] turns into a JSON-RPC
//! error response; bad input is refused before anything reaches an upstream.
//! Later phases (ACL, rate limits, method policy, cache, hedging, ejection)
//! slot in between these without touching the others.

pub mod classify;
pub mod forward;
pub mod headers;
pub mod limits;
pub mod network;
pub mod parse;
pub mod pipeline;
pub mod reply;
pub mod request_id;
pub mod respond;
pub mod retry;
pub mod server;
