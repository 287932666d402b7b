//! Meridian's gRPC protocol, generated from `proto/meridian/v1/*.proto`.
//!
//! Only generated code lives here; conversion to domain types lives in
//! `meridian-common`, so the wire format and the model can evolve separately.

/// Version 1 of the protocol.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("meridian.v1");
}
