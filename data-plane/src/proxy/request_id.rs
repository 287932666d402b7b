//! Phase: the request id, echoed when the client sent a usable one,
//! otherwise generated.
//!
//! Generated ids are a per-process random prefix plus an atomic counter:
//! unique enough to correlate logs across data planes, and far cheaper than
//! a random UUID per request.

use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, HeaderValue};

use super::headers::X_REQUEST_ID;

/// Longest client-supplied id echoed; longer ones are replaced.
pub const MAX_LEN: usize = 128;

/// Generator of request ids for one data plane.
#[derive(Debug)]
pub struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestIds {
    pub fn new() -> Self {
        Self {
            prefix: rand::random(),
            next: AtomicU64::new(1),
        }
    }

    /// The request's `x-request-id` if it is a short printable token,
    /// otherwise a fresh one.
    pub fn resolve(&self, headers: &HeaderMap) -> HeaderValue {
        match headers.get(X_REQUEST_ID) {
            Some(v) if usable(v) => v.clone(),
            _ => self.generate(),
        }
    }

    fn generate(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:08x}{:012x}", self.prefix, n);
        // Hex digits are always a valid header value.
        HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("unknown"))
    }
}

fn usable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= MAX_LEN && b.iter().all(u8::is_ascii_graphic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_good_ids_and_replaces_bad_ones() {
        let ids = RequestIds::new();
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(ids.resolve(&h), "abc-123");

        h.insert(X_REQUEST_ID, HeaderValue::from_static("has space"));
        let generated = ids.resolve(&h);
        assert_ne!(generated, "has space");
        assert_eq!(generated.len(), 20);

        let a = ids.resolve(&HeaderMap::new());
        let b = ids.resolve(&HeaderMap::new());
        assert_ne!(a, b);
    }
}
