//! The client request path, one module per phase:
//!
//! ```text
//! request_id, priority → network (route, /archive, POST only) → limits (body size)
//!   → parse (single, batch, notifications) → dispatch: per call policy (deny/allow)
//!   → classify (read/archive/write) → batch (split into jobs)
//!   → outbound (each job's body, with Meridian's own ids)
//!   → hedge (reads: retry, backup try) | write (no blind retry, broadcast)
//!   → forward (select, eject, queue, one try, validate) → batch (reassemble)
//!   → respond (headers) → access_log, metrics
//! ```
//!
//! [`pipeline`] strings the phases together for one request;
//! [`crate::server`] serves it on the client listener. Each phase returns either its result
//! or an [`reply::ErrorReply`], which [`respond`] turns into a JSON-RPC
//! error response; bad input is refused before anything reaches an upstream.
//! Later phases (ACL, rate limits, cache) slot in between these without
//! touching the others.

pub mod access_log;
pub mod batch;
pub mod cached;
pub mod classify;
pub mod dispatch;
pub mod forward;
pub mod fuzz;
pub mod headers;
pub mod hedge;
pub mod limits;
pub mod network;
pub mod outbound;
pub mod parse;
pub mod pipeline;
pub mod policy;
pub mod reply;
pub mod request_id;
pub mod respond;
pub mod retry;
pub mod validate;
pub mod write;
