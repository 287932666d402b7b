//! The head of a client request on the HTTP/1.1 fast path.
//!
//! The fast path serves what JSON-RPC clients send: `POST` with a
//! `Content-Length` body (or none), HTTP/1.1 or 1.0. Anything else — chunked
//! bodies, `Expect: 100-continue`, upgrades, other methods, the HTTP/2
//! preface, malformed or oversized heads — is [`Head::Handoff`]: hyper
//! serves the connection from that request on, with every rule and error
//! answer it has.

use std::ops::Range;

use crate::balance::{Priority, PriorityHeaders};
use crate::proxy::headers::X_REQUEST_ID;

/// Most header lines a fast-path head may carry (more: handed to hyper).
pub const MAX_HEADERS: usize = 32;
/// Longest head the fast path waits for before handing the connection to
/// hyper, which applies its own limits and answers.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// What the bytes at the front of a connection's buffer are.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// Not a whole head yet.
    Partial,
    /// A request the fast path serves.
    Fast(FastHead),
    /// A request hyper serves, from this head on.
    Handoff,
}

/// A parsed fast-path head. Ranges index the buffer the head was parsed
/// from, so the head holds no borrow of it.
#[derive(Debug, PartialEq, Eq)]
pub struct FastHead {
    /// Bytes of the head, blank line included.
    pub len: usize,
    /// The request path (no query string).
    pub path: Range<usize>,
    /// Body bytes that follow the head.
    pub content_length: u64,
    /// The client keeps the connection open after the response.
    pub keep_alive: bool,
    /// HTTP/1.0: keep-alive is explicit, and said in the response.
    pub http10: bool,
    /// The client's `x-request-id`, unchecked.
    pub request_id: Option<Range<usize>>,
    /// The `Host` header (the first), unchecked: it selects a network
    /// served at a host name.
    pub host: Option<Range<usize>>,
    pub priority: Priority,
}

/// Parses the head at the front of `buf`.
pub fn parse(buf: &[u8]) -> Head {
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let len = match request.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD_BYTES => return Head::Partial,
        Ok(httparse::Status::Partial) | Err(_) => return Head::Handoff,
    };
    if request.method != Some("POST") {
        return Head::Handoff;
    }
    let Some(target) = request.path else {
        return Head::Handoff;
    };
    // Origin form only; hyper normalises the rare absolute form.
    if !target.starts_with('/') {
        return Head::Handoff;
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let http10 = request.version == Some(0);
    let mut keep_alive = !http10;
    let mut content_length = None;
    let mut request_id = None;
    let mut host = None;
    let mut priority = PriorityHeaders::default();
    for header in request.headers.iter() {
        let name = header.name.as_bytes();
        let value = header.value;
        if name.eq_ignore_ascii_case(b"content-length") {
            match (content_length, decimal(value)) {
                (None, Some(n)) => content_length = Some(n),
                // Repeated or malformed: hyper answers it.
                _ => return Head::Handoff,
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && http10 {
                    keep_alive = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return Head::Handoff;
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"upgrade")
        {
            return Head::Handoff;
        } else if name.eq_ignore_ascii_case(b"host") {
            host.get_or_insert_with(|| range_in(buf, value));
        } else if name.eq_ignore_ascii_case(X_REQUEST_ID.as_str().as_bytes()) {
            // The first one, as `HeaderMap::get` reads it.
            request_id.get_or_insert_with(|| range_in(buf, value));
        } else {
            priority.observe(name, value);
        }
    }
    Head::Fast(FastHead {
        len,
        path: range_in(buf, path.as_bytes()),
        content_length: content_length.unwrap_or(0),
        keep_alive,
        http10,
        request_id,
        host,
        priority: priority.priority(),
    })
}

/// A `Content-Length` value: ASCII digits only, no sign, no overflow.
fn decimal(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Where `part` (a slice of `buf`) lies in `buf`.
fn range_in(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(buf.as_ptr() as usize);
    start..start + part.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast(head: &str) -> FastHead {
        match parse(head.as_bytes()) {
            Head::Fast(h) => h,
            other => panic!("{head:?} should take the fast path, got {other:?}"),
        }
    }

    #[test]
    fn reads_what_a_json_rpc_post_needs() {
        let raw = "POST /eth/archive?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\
                   X-Request-Id: abc\r\nX-Priority: high\r\n\r\n{\"a\":1}";
        let h = fast(raw);
        assert_eq!(h.len, raw.find("{").unwrap());
        assert_eq!(&raw[h.path.clone()], "/eth/archive");
        assert_eq!(h.content_length, 12);
        assert!(h.keep_alive && !h.http10);
        assert_eq!(&raw[h.request_id.clone().unwrap()], "abc");
        assert_eq!(h.priority, Priority::High);
    }

    #[test]
    fn the_first_request_id_wins() {
        let raw = "POST / HTTP/1.1\r\nx-request-id: one\r\nX-Request-Id: two\r\n\r\n";
        assert_eq!(&raw[fast(raw).request_id.unwrap()], "one");
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        assert!(!fast("POST / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!fast("POST / HTTP/1.0\r\n\r\n").keep_alive);
        let h = fast("POST / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(h.keep_alive && h.http10);
        assert_eq!(fast("POST / HTTP/1.1\r\n\r\n").content_length, 0);
    }

    #[test]
    fn waits_for_the_whole_head() {
        assert_eq!(parse(b"POST / HTTP/1.1\r\nContent-Le"), Head::Partial);
        assert_eq!(parse(b""), Head::Partial);
    }

    #[test]
    fn hands_everything_else_to_hyper() {
        for raw in [
            "GET / HTTP/1.1\r\n\r\n",
            "HEAD / HTTP/1.1\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +2\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "POST http://a/eth HTTP/1.1\r\n\r\n",
            "POST / HTTP/1.1\r\nbad header\r\n\r\n",
        ] {
            assert_eq!(parse(raw.as_bytes()), Head::Handoff, "{raw:?}");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("h{i}: v\r\n")).collect();
        let raw = format!("POST / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse(raw.as_bytes()), Head::Handoff);
        let huge = format!("POST / HTTP/1.1\r\nx: {}", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(parse(huge.as_bytes()), Head::Handoff);
    }
}
