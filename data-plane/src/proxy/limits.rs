//! Phase: the request body, read only up to the network's `max_body_bytes`.
//!
//! A `Content-Length` over the limit is refused before a byte is read; a
//! body without one (chunked) is capped while it streams in. Either way the
//! answer is HTTP 413 with a JSON-RPC error and `x-rejected-by: size`, and
//! the proxy never buffers more than the limit.

use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use hyper::body::Body;
use meridian_common::jsonrpc;

use super::reply::ErrorReply;

/// The body of a client request, as the server that read its head hands
/// it to the pipeline (which knows the limit only once the network is).
pub trait RequestBody {
    /// Reads the whole body if it is at most `max` bytes; a declared
    /// length over `max` is refused before a byte is read.
    fn read(self, max: u64) -> impl Future<Output = Result<Bytes, ErrorReply>> + Send;
}

/// A body hyper reads (HTTP/2, chunked, and everything the HTTP/1.1 fast
/// path hands over).
#[derive(Debug)]
pub struct HyperBody<B> {
    /// The request's `Content-Length`, if it declared one.
    pub content_length: Option<u64>,
    pub body: B,
}

impl<B> HyperBody<B> {
    pub fn new(headers: &HeaderMap, body: B) -> Self {
        Self {
            content_length: content_length(headers),
            body,
        }
    }
}

impl<B> RequestBody for HyperBody<B>
where
    B: Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn read(self, max: u64) -> impl Future<Output = Result<Bytes, ErrorReply>> + Send {
        read_body(self.content_length, self.body, max)
    }
}

/// Reads the whole body if it is at most `max` bytes.
async fn read_body<B>(content_length: Option<u64>, body: B, max: u64) -> Result<Bytes, ErrorReply>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Some(len) = content_length {
        check_declared(len, max)?;
    }
    let cap = usize::try_from(max).unwrap_or(usize::MAX);
    match Limited::new(body, cap).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(too_large(max).body_unread()),
        Err(e) => Err(ErrorReply::rejected(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            "body",
            format!("cannot read the request body: {e}"),
        )
        .body_unread()),
    }
}

/// Refuses a declared body length over `max`, leaving the body unread.
pub fn check_declared(len: u64, max: u64) -> Result<(), ErrorReply> {
    if len > max {
        return Err(too_large(max).body_unread());
    }
    Ok(())
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn too_large(max: u64) -> ErrorReply {
    ErrorReply::rejected(
        StatusCode::PAYLOAD_TOO_LARGE,
        jsonrpc::LIMIT_EXCEEDED,
        "size",
        format!("request body is over this network's limit of {max} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::{Full, StreamBody};
    use hyper::body::Frame;

    use super::*;

    #[tokio::test]
    async fn accepts_up_to_the_limit() {
        let body = Full::new(Bytes::from_static(b"12345"));
        assert_eq!(read_body(None, body, 5).await.unwrap(), "12345");
    }

    #[tokio::test]
    async fn refuses_a_declared_length_over_the_limit_up_front() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, "6".parse().unwrap());
        // The body would fit; the declaration alone is refused.
        let e = HyperBody::new(&h, Full::new(Bytes::from_static(b"1")))
            .read(5)
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            e.body_unread,
            "the connection must close after an unread body"
        );
        assert_eq!(e.rejected_by, Some("size"));
        assert_eq!(e.code, jsonrpc::LIMIT_EXCEEDED);
    }

    #[tokio::test]
    async fn caps_a_streamed_body_without_length() {
        let chunks = (0..10).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"abcd"))));
        let body = StreamBody::new(futures_util::stream::iter(chunks));
        let e = read_body(None, body, 16).await.unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            e.body_unread,
            "the connection must close after an unread body"
        );
    }
}
