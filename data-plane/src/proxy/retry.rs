//! Which failed tries may be tried again on another upstream.
//!
//! The one place the retry rules live: reads are retried after any failure
//! that says nothing about the request itself (connection refused, reset,
//! timeout, 5xx, 429, 403, an answer that is not valid JSON-RPC); writes
//! only when the request provably never left (the connection could not be
//! opened), because a write that reached a node may have been executed even
//! if its answer was lost. An oversized answer would be as large elsewhere,
//! and a full queue is load shedding: neither is retried.

use super::forward::TryError;

/// Most tries of one request, whatever the policy says (a request remembers
/// this many tried upstreams without allocating).
pub const MAX_TRIES: u32 = crate::routing::Tried::CAPACITY as u32;

/// May a request whose try failed with `error` be tried again?
pub fn may_retry(write: bool, error: &TryError) -> bool {
    if write {
        matches!(error, TryError::Connect(_))
    } else {
        !matches!(error, TryError::TooLarge(_) | TryError::Queue(_))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::StatusCode;

    use super::*;
    use crate::balance::QueueError;

    #[test]
    fn writes_retry_only_when_never_sent() {
        let sent = [
            TryError::Timeout(Duration::from_secs(1)),
            TryError::Transport("reset".into()),
            TryError::Status(StatusCode::BAD_GATEWAY),
            TryError::Status(StatusCode::TOO_MANY_REQUESTS),
            TryError::Status(StatusCode::FORBIDDEN),
            TryError::Invalid("html".into()),
        ];
        assert!(may_retry(true, &TryError::Connect("refused".into())));
        assert!(may_retry(false, &TryError::Connect("refused".into())));
        for e in &sent {
            assert!(!may_retry(true, e), "{e}");
            assert!(may_retry(false, e), "{e}");
        }
        assert!(!may_retry(false, &TryError::TooLarge(1)));
        assert!(!may_retry(false, &TryError::Queue(QueueError::Full("low"))));
    }
}
