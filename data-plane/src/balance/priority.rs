//! Phase: the priority class of a request, from its headers.
//!
//! `x-priority: fast-track|high|low` is Meridian's own header; the
//! prio-load-balancer's `X-Fast-Track: true` and `X-High-Priority: true` are
//! accepted too. When several are present the highest class wins. A request
//! without any (or with an unknown value) is `low`, as in the
//! prio-load-balancer: priority is something a client asks for, and an
//! advisory header never fails a request.

use http::{HeaderMap, HeaderName};

/// Meridian's priority header.
pub const X_PRIORITY: HeaderName = HeaderName::from_static("x-priority");
/// prio-load-balancer's fast-track flag.
pub const X_FAST_TRACK: HeaderName = HeaderName::from_static("x-fast-track");
/// prio-load-balancer's high-priority flag.
pub const X_HIGH_PRIORITY: HeaderName = HeaderName::from_static("x-high-priority");

/// A request's priority class; queued requests are dispatched in this
/// order (declaration order is dispatch order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    /// Dispatched before anything else.
    FastTrack,
    /// Before `low`.
    High,
    /// Everything else (the default).
    #[default]
    Low,
}

impl Priority {
    /// Every class, in dispatch order.
    pub const ALL: [Priority; 3] = [Priority::FastTrack, Priority::High, Priority::Low];

    /// The label in logs and metrics (and the `x-priority` value).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FastTrack => "fast-track",
            Self::High => "high",
            Self::Low => "low",
        }
    }

    /// Position in [`Priority::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The class a request's headers ask for.
    pub fn from_headers(headers: &HeaderMap) -> Priority {
        let mut asked = PriorityHeaders::default();
        for (name, value) in headers {
            asked.observe(name.as_str().as_bytes(), value.as_bytes());
        }
        asked.priority()
    }
}

/// The priority headers of one request, observed one header at a time, so
/// a server that never builds a `HeaderMap` reads them in its own pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct PriorityHeaders {
    asked: Priority,
    high: bool,
    fast_track: bool,
}

impl PriorityHeaders {
    /// Takes note of one header (any other header is ignored).
    pub fn observe(&mut self, name: &[u8], value: &[u8]) {
        let value = value.trim_ascii();
        if name.eq_ignore_ascii_case(X_PRIORITY.as_str().as_bytes()) {
            let asked = match value {
                b if b.eq_ignore_ascii_case(b"fast-track") => Priority::FastTrack,
                b if b.eq_ignore_ascii_case(b"high") => Priority::High,
                _ => Priority::Low,
            };
            self.asked = self.asked.min(asked);
        } else if name.eq_ignore_ascii_case(X_HIGH_PRIORITY.as_str().as_bytes()) {
            self.high |= value.eq_ignore_ascii_case(b"true");
        } else if name.eq_ignore_ascii_case(X_FAST_TRACK.as_str().as_bytes()) {
            self.fast_track |= value.eq_ignore_ascii_case(b"true");
        }
    }

    /// The highest class asked for.
    pub fn priority(self) -> Priority {
        if self.fast_track {
            Priority::FastTrack
        } else if self.high {
            self.asked.min(Priority::High)
        } else {
            self.asked
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn of(pairs: &[(&'static str, &'static str)]) -> Priority {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        Priority::from_headers(&h)
    }

    #[test]
    fn reads_every_spelling() {
        assert_eq!(of(&[]), Priority::Low);
        assert_eq!(of(&[("x-priority", "fast-track")]), Priority::FastTrack);
        assert_eq!(of(&[("x-priority", "HIGH")]), Priority::High);
        assert_eq!(of(&[("x-priority", "low")]), Priority::Low);
        assert_eq!(of(&[("x-priority", "urgent!")]), Priority::Low);
        assert_eq!(of(&[("X-Fast-Track", "true")]), Priority::FastTrack);
        assert_eq!(of(&[("X-High-Priority", "true")]), Priority::High);
        assert_eq!(of(&[("X-High-Priority", "false")]), Priority::Low);
        // The highest class asked for wins.
        assert_eq!(
            of(&[("x-priority", "low"), ("X-High-Priority", "true")]),
            Priority::High
        );
        assert_eq!(
            of(&[("x-priority", "high"), ("X-Fast-Track", "true")]),
            Priority::FastTrack
        );
        assert!(Priority::FastTrack < Priority::High && Priority::High < Priority::Low);
    }
}
