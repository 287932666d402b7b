//! What a request ends in: an upstream's [`Answer`], or an [`ErrorReply`]
//! that becomes a JSON-RPC error response.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde_json::value::RawValue;

/// An answer body for the client: an upstream's (passed unchanged when it
/// already carries the client's id bytes) or one reassembled from a split
/// batch. An empty body with HTTP 204 answers notifications.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
    /// `x-handled-by`: the upstream(s) that answered.
    pub handled_by: HeaderValue,
    /// Upstream tries it took (hedges included).
    pub tries: u32,
    /// `x-rejected-by` when Meridian refused part of a batch itself.
    pub rejected_by: Option<HeaderValue>,
    /// `x-cache`, when some call was cacheable.
    pub cache: Option<HeaderValue>,
}

/// A request Meridian answers itself with a JSON-RPC error.
#[derive(Debug, Clone)]
pub struct ErrorReply {
    pub status: StatusCode,
    /// JSON-RPC error code (`meridian_common::jsonrpc`).
    pub code: i64,
    pub message: String,
    /// The request's id, echoed byte for byte; `None` means `null` (not
    /// read yet, unreadable, or a batch).
    pub id: Option<Box<RawValue>>,
    /// `x-rejected-by` when a Meridian check refused the request.
    pub rejected_by: Option<&'static str>,
    /// The last upstream tried, when the request got that far.
    pub handled_by: Option<HeaderValue>,
    /// Upstream tries made (0: none).
    pub tries: u32,
    /// The request body was left (partly) unread, so the connection cannot
    /// carry another request: the response says `connection: close`, or a
    /// pooled client would reuse a connection that still holds body bytes.
    pub body_unread: bool,
}

impl ErrorReply {
    /// A refusal by the check named `by` (the `x-rejected-by` value).
    pub fn rejected(
        status: StatusCode,
        code: i64,
        by: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            id: None,
            rejected_by: Some(by),
            handled_by: None,
            tries: 0,
            body_unread: false,
        }
    }

    /// Mark the request body as left unread (see [`ErrorReply::body_unread`]).
    pub fn body_unread(mut self) -> Self {
        self.body_unread = true;
        self
    }

    /// Echo `id` in the error body.
    pub fn with_id(mut self, id: Option<&RawValue>) -> Self {
        self.id = id.map(ToOwned::to_owned);
        self
    }
}
