//! Phase: the request id, echoed when the client sent a usable one,
//! otherwise generated.
//!
//! Generated ids are a per-process random prefix plus an atomic counter:
//! unique enough to correlate logs across data planes, and far cheaper than
//! a random UUID per request. They are written into a per-thread block of
//! a few thousand ids and handed out as slices of it, so a generated id
//! costs no allocation of its own (a `HeaderValue` built from bytes copies
//! them into a fresh allocation).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use http::{HeaderMap, HeaderValue};

use super::headers::X_REQUEST_ID;

/// Longest client-supplied id echoed; longer ones are replaced.
pub const MAX_LEN: usize = 128;

/// Generated ids per block: one allocation per this many requests.
const IDS_PER_BLOCK: usize = 4096;

/// Length of a generated id while the counter is under 2^48.
const ID_LEN: usize = 20;

thread_local! {
    /// Where this thread writes its next generated ids.
    static BLOCK: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

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
            Some(v) if usable(v.as_bytes()) => v.clone(),
            _ => self.generate(),
        }
    }

    /// [`RequestIds::resolve`] for a server that reads the client's
    /// `x-request-id` as raw bytes.
    pub fn resolve_bytes(&self, client: Option<&[u8]>) -> HeaderValue {
        client
            .filter(|v| usable(v))
            .and_then(|v| HeaderValue::from_bytes(v).ok())
            .unwrap_or_else(|| self.generate())
    }

    fn generate(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // `{:08x}{:012x}` of prefix and counter, written without `format!`
        // (one allocation fewer per request).
        let mut id = [0u8; 24];
        let mut len = hex(&mut id, 0, u64::from(self.prefix), 8);
        len = hex(&mut id, len, n, 12);
        let id = id.get(..len).unwrap_or_default();
        let bytes = BLOCK.with_borrow_mut(|block| {
            if block.capacity() - block.len() < id.len() {
                // The old block lives on in the ids still in flight.
                *block = BytesMut::with_capacity(IDS_PER_BLOCK * ID_LEN);
            }
            block.extend_from_slice(id);
            block.split().freeze()
        });
        // Hex digits are always a valid header value.
        HeaderValue::from_maybe_shared(bytes).unwrap_or(HeaderValue::from_static("unknown"))
    }
}

/// Writes `value` in lower-case hex, at least `width` digits, at `at`;
/// returns the end.
fn hex(out: &mut [u8; 24], at: usize, value: u64, width: usize) -> usize {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digits = (16 - value.leading_zeros() as usize / 4).max(width);
    for i in 0..digits {
        let nibble = (value >> (4 * (digits - 1 - i))) & 0xf;
        if let (Some(slot), Some(&digit)) = (out.get_mut(at + i), DIGITS.get(nibble as usize)) {
            *slot = digit;
        }
    }
    at + digits
}

fn usable(b: &[u8]) -> bool {
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

        assert_eq!(ids.resolve_bytes(Some(b"abc-123")), "abc-123");
        assert_eq!(ids.resolve_bytes(Some(b"has space")).len(), 20);
        assert_eq!(ids.resolve_bytes(Some(b"")).len(), 20);

        let a = ids.resolve(&HeaderMap::new());
        let b = ids.resolve(&HeaderMap::new());
        assert_ne!(a, b);
    }

    #[test]
    fn ids_from_one_block_and_across_blocks_stay_distinct_and_whole() {
        let ids = RequestIds::new();
        let all: Vec<HeaderValue> = (0..3 * IDS_PER_BLOCK + 7)
            .map(|_| ids.resolve(&HeaderMap::new()))
            .collect();
        let distinct: std::collections::HashSet<&[u8]> =
            all.iter().map(HeaderValue::as_bytes).collect();
        assert_eq!(distinct.len(), all.len());
        for (i, id) in all.iter().enumerate() {
            let counter = u64::from_str_radix(&id.to_str().unwrap()[8..], 16).unwrap();
            assert_eq!(counter, i as u64 + 1, "an id overwritten by a later one");
            assert_eq!(id.len(), ID_LEN);
        }
    }

    #[test]
    fn generated_ids_are_prefix_and_counter_in_hex() {
        for (prefix, n) in [
            (0u32, 0u64),
            (0xdead_beef, 1),
            (7, 0xfff_ffff_ffff),
            (1, u64::MAX),
        ] {
            let mut id = [0u8; 24];
            let len = hex(&mut id, 0, u64::from(prefix), 8);
            let len = hex(&mut id, len, n, 12);
            assert_eq!(&id[..len], format!("{prefix:08x}{n:012x}").as_bytes());
        }
    }
}
