//! Writing a [`ClientResponse`] as HTTP/1.1 on the fast path: the status
//! line and headers go straight into the connection's write buffer.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;

use crate::proxy::respond::ClientResponse;

/// Bodies up to this size are copied behind the head, so the response goes
/// out in one `write`; larger ones are written from where they are.
pub const COPY_BODY_UP_TO: usize = 16 * 1024;

/// Appends the response head (and, when small, the body) to `out`; returns
/// whether the body was appended.
pub fn response(
    out: &mut Vec<u8>,
    response: &ClientResponse,
    keep_alive: bool,
    http10: bool,
) -> bool {
    let status = response.status;
    // The client's version, as hyper answers.
    out.extend_from_slice(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    response.for_each_header(|name, value| {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    });
    // RFC 9110 §8.6: never on 204 (a notification's answer).
    if status != StatusCode::NO_CONTENT {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(response.body.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"date: ");
    date(out);
    out.extend_from_slice(b"\r\n\r\n");
    let copy = response.body.len() <= COPY_BODY_UP_TO;
    if copy {
        out.extend_from_slice(&response.body);
    }
    copy
}

thread_local! {
    /// The `date` value of the current second: formatting it once a second
    /// instead of per response (as hyper does).
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

/// Appends the IMF-fixdate of now.
fn date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(cached, text)| {
        if *cached != second {
            let formatted = httpdate::fmt_http_date(now);
            if formatted.len() == text.len() {
                text.copy_from_slice(formatted.as_bytes());
                *cached = second;
            }
        }
        out.extend_from_slice(text);
    });
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::HeaderValue;

    use super::*;

    fn reply(status: StatusCode, body: &'static str) -> ClientResponse {
        ClientResponse {
            status,
            content_type: Some(HeaderValue::from_static("application/json")),
            request_id: HeaderValue::from_static("rid"),
            handled_by: HeaderValue::from_static("node-a"),
            tries: 2,
            rejected_by: None,
            cache: None,
            allow_post: false,
            close: false,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn writes_status_headers_length_and_body() {
        let mut out = Vec::new();
        assert!(response(
            &mut out,
            &reply(StatusCode::OK, "{}"),
            true,
            false
        ));
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.lines();
        assert_eq!(lines.next(), Some("HTTP/1.1 200 OK"));
        let rest: Vec<_> = lines.collect();
        for line in [
            "content-type: application/json",
            "x-request-id: rid",
            "x-handled-by: node-a",
            "x-meridian-tries: 2",
            "content-length: 2",
        ] {
            assert!(rest.contains(&line), "{line} in {rest:?}");
        }
        let date = rest.iter().find_map(|l| l.strip_prefix("date: ")).unwrap();
        assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
        assert!(!head.contains("connection"));
        assert_eq!(body, "{}");
    }

    #[test]
    fn says_close_and_keep_alive_when_it_must() {
        let mut out = Vec::new();
        response(
            &mut out,
            &reply(StatusCode::PAYLOAD_TOO_LARGE, ""),
            false,
            false,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 413 Payload Too Large\r\n"));
        assert!(text.contains("\r\nconnection: close\r\n"));
        assert!(text.contains("\r\ncontent-length: 0\r\n"));

        let mut out = Vec::new();
        response(&mut out, &reply(StatusCode::OK, "{}"), true, true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
        assert!(text.contains("\r\nconnection: keep-alive\r\n"));
    }

    #[test]
    fn a_204_has_no_content_length() {
        let mut out = Vec::new();
        response(&mut out, &reply(StatusCode::NO_CONTENT, ""), true, false);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 204 No Content\r\n"), "{text}");
        assert!(!text.contains("content-length"), "{text}");
    }

    #[test]
    fn leaves_large_bodies_out_of_the_buffer() {
        let big: &'static str = "x".repeat(COPY_BODY_UP_TO + 1).leak();
        let mut out = Vec::new();
        assert!(!response(
            &mut out,
            &reply(StatusCode::OK, big),
            true,
            false
        ));
        assert!(out.ends_with(b"\r\n\r\n"));
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(&format!("content-length: {}\r\n", COPY_BODY_UP_TO + 1)));
    }
}
