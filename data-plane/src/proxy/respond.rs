//! Phase: the response, with Meridian's headers.
//!
//! Every response carries `x-request-id`, `x-handled-by` (the upstream,
//! `leader`, several comma-separated for a split batch, or `meridian` when
//! Meridian answered itself) and `x-meridian-tries` (upstream tries, 0 when
//! none); `x-rejected-by` on Meridian's own refusals (for a batch: the
//! checks that refused some of its elements). Upstream bodies pass through
//! untouched.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use meridian_common::jsonrpc;
use meridian_common::serve::Body;

use super::headers::{X_CACHE, X_HANDLED_BY, X_MERIDIAN_TRIES, X_REJECTED_BY, X_REQUEST_ID};
use super::reply::{Answer, ErrorReply};
use super::retry::MAX_TRIES;

/// `x-meridian-tries` values for every try count one call can reach, so a
/// response does not format (and allocate) its count.
const TRIES: [&str; MAX_TRIES as usize + 1] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
];

/// The `x-meridian-tries` value for `tries` (a batch can sum past the table).
fn tries_value(tries: u32) -> HeaderValue {
    usize::try_from(tries)
        .ok()
        .and_then(|i| TRIES.get(i))
        .map_or_else(|| HeaderValue::from(tries), |t| HeaderValue::from_static(t))
}

/// `x-handled-by` of answers Meridian gives itself.
pub const HANDLED_BY_MERIDIAN: HeaderValue = HeaderValue::from_static("meridian");
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
const POST: HeaderValue = HeaderValue::from_static("POST");

/// A response for the client, before any HTTP server encodes it: hyper
/// ([`ClientResponse::into_http`]) or the HTTP/1.1 fast path, which writes
/// the same headers straight into its buffer.
#[derive(Debug)]
pub struct ClientResponse {
    pub status: StatusCode,
    /// `content-type`; `None` for an empty body.
    pub content_type: Option<HeaderValue>,
    pub request_id: HeaderValue,
    pub handled_by: HeaderValue,
    pub tries: u32,
    pub rejected_by: Option<HeaderValue>,
    /// `x-cache`, when some call was cacheable.
    pub cache: Option<HeaderValue>,
    /// `allow: POST`, on Meridian's own HTTP 405.
    pub allow_post: bool,
    /// The connection cannot carry another request (the body was left
    /// unread): the response says `connection: close`.
    pub close: bool,
    pub body: Bytes,
}

impl ClientResponse {
    /// Every header but `content-length`, `connection` and `date` (which
    /// belong to the connection), in the order they are written.
    pub fn for_each_header(&self, mut f: impl FnMut(&HeaderName, &HeaderValue)) {
        if let Some(content_type) = &self.content_type {
            f(&header::CONTENT_TYPE, content_type);
        }
        if self.allow_post {
            f(&header::ALLOW, &POST);
        }
        if let Some(by) = &self.rejected_by {
            f(&X_REJECTED_BY, by);
        }
        f(&X_REQUEST_ID, &self.request_id);
        f(&X_HANDLED_BY, &self.handled_by);
        if let Some(cache) = &self.cache {
            f(&X_CACHE, cache);
        }
        f(&X_MERIDIAN_TRIES, &tries_value(self.tries));
    }

    /// The response for hyper.
    pub fn into_http(self) -> Response<Body> {
        let mut headers = HeaderMap::with_capacity(8);
        self.for_each_header(|name, value| {
            headers.insert(name, value.clone());
        });
        if self.close {
            // hyper closes an HTTP/1 connection after this response (and
            // drops the header on HTTP/2, where the stream is reset instead).
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let mut response = Response::new(Full::new(self.body).boxed());
        *response.status_mut() = self.status;
        *response.headers_mut() = headers;
        response
    }
}

/// The client response for an upstream's answer.
pub fn answer(answer: Answer, request_id: HeaderValue) -> ClientResponse {
    let content_type =
        (!answer.body.is_empty()).then(|| answer.content_type.unwrap_or(APPLICATION_JSON));
    ClientResponse {
        status: answer.status,
        content_type,
        request_id,
        handled_by: answer.handled_by,
        tries: answer.tries,
        rejected_by: answer.rejected_by,
        cache: answer.cache,
        allow_post: false,
        close: false,
        body: answer.body,
    }
}

/// The client response for a request Meridian answers itself.
pub fn error(reply: ErrorReply, request_id: HeaderValue) -> ClientResponse {
    let body = jsonrpc::error_response(reply.id.as_deref(), reply.code, &reply.message);
    ClientResponse {
        status: reply.status,
        content_type: Some(APPLICATION_JSON),
        request_id,
        handled_by: reply.handled_by.unwrap_or(HANDLED_BY_MERIDIAN),
        tries: reply.tries,
        rejected_by: reply.rejected_by.map(HeaderValue::from_static),
        cache: None,
        allow_post: reply.status == StatusCode::METHOD_NOT_ALLOWED,
        close: reply.body_unread,
        body: Bytes::from(body),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;

    #[tokio::test]
    async fn errors_echo_the_id_and_name_the_check() {
        let id = RawValue::from_string("\"abc\"".into()).unwrap();
        let reply = ErrorReply::rejected(
            StatusCode::NOT_FOUND,
            jsonrpc::METHOD_NOT_FOUND,
            "network",
            "no",
        )
        .with_id(Some(&id));
        let r = error(reply, HeaderValue::from_static("rid")).into_http();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()[X_REJECTED_BY], "network");
        assert_eq!(r.headers()[X_REQUEST_ID], "rid");
        assert_eq!(r.headers()[X_HANDLED_BY], "meridian");
        assert_eq!(r.headers()[X_MERIDIAN_TRIES], "0");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            body,
            r#"{"jsonrpc":"2.0","id":"abc","error":{"code":-32601,"message":"no"}}"#
        );
    }

    #[test]
    fn tries_are_counted_past_the_table_too() {
        assert_eq!(tries_value(0), "0");
        assert_eq!(tries_value(16), "16");
        assert_eq!(tries_value(40), "40");
    }

    #[test]
    fn answers_carry_upstream_and_tries() {
        let r = answer(
            Answer {
                status: StatusCode::OK,
                content_type: None,
                body: Bytes::from_static(b"{}"),
                handled_by: HeaderValue::from_static("a"),
                tries: 2,
                rejected_by: None,
                cache: None,
            },
            HeaderValue::from_static("rid"),
        )
        .into_http();
        assert_eq!(r.headers()[X_HANDLED_BY], "a");
        assert_eq!(r.headers()[X_MERIDIAN_TRIES], "2");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }
}
