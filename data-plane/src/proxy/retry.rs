//! Which failed tries may be tried again on another upstream.
//!
//! The one place the retry rules live: reads are retried after any failure
//! that says nothing about the request itself (connection refused, reset,
//! timeout, 5xx); writes only when the request provably never left (the
//! connection could not be opened), because a write that reached a node may
//! have been executed even if its answer was lost.

use meridian_common::chain::MethodClass;

use super::forward::TryError;

/// Tries of one request in this version: the first plus one retry.
pub const MAX_TRIES: u32 = 2;

/// May a request of `class` whose try failed with `error` be tried again?
pub fn may_retry(class: MethodClass, error: &TryError) -> bool {
    match class {
        MethodClass::Write => matches!(error, TryError::Connect(_)),
        MethodClass::Read | MethodClass::Subscribe => !matches!(error, TryError::TooLarge(_)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn writes_retry_only_when_never_sent() {
        let sent = [
            TryError::Timeout(Duration::from_secs(1)),
            TryError::Transport("reset".into()),
        ];
        assert!(may_retry(
            MethodClass::Write,
            &TryError::Connect("refused".into())
        ));
        for e in &sent {
            assert!(!may_retry(MethodClass::Write, e), "{e}");
            assert!(may_retry(MethodClass::Read, e), "{e}");
        }
        assert!(!may_retry(MethodClass::Read, &TryError::TooLarge(1)));
    }
}
