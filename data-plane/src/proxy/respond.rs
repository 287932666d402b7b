//! Phase: the response, with Meridian's headers.
//!
//! Every response carries `x-request-id`, `x-handled-by` (the upstream,
//! `leader`, several comma-separated for a split batch, or `meridian` when
//! Meridian answered itself) and `x-meridian-tries` (upstream tries, 0 when
//! none); `x-rejected-by` on Meridian's own refusals (for a batch: the
//! checks that refused some of its elements). Upstream bodies pass through
//! untouched.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use meridian_common::jsonrpc;
use meridian_common::serve::Body;

use super::headers::{X_HANDLED_BY, X_MERIDIAN_TRIES, X_REJECTED_BY, X_REQUEST_ID};
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

/// The client response for an upstream's answer.
pub fn answer(answer: Answer, request_id: HeaderValue) -> Response<Body> {
    let empty = answer.body.is_empty();
    let mut response = Response::new(Full::new(answer.body).boxed());
    *response.status_mut() = answer.status;
    let headers = response.headers_mut();
    if !empty {
        headers.insert(
            header::CONTENT_TYPE,
            answer.content_type.unwrap_or(APPLICATION_JSON),
        );
    }
    if let Some(by) = answer.rejected_by {
        headers.insert(X_REJECTED_BY, by);
    }
    common_headers(headers, request_id, answer.handled_by, answer.tries);
    response
}

/// The client response for a request Meridian answers itself.
pub fn error(reply: ErrorReply, request_id: HeaderValue) -> Response<Body> {
    let body = jsonrpc::error_response(reply.id.as_deref(), reply.code, &reply.message);
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, APPLICATION_JSON);
    if reply.status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    if let Some(by) = reply.rejected_by {
        headers.insert(X_REJECTED_BY, HeaderValue::from_static(by));
    }
    if reply.body_unread {
        // hyper closes an HTTP/1 connection after this response (and drops
        // the header on HTTP/2, where the stream is reset instead).
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    common_headers(
        headers,
        request_id,
        reply.handled_by.unwrap_or(HANDLED_BY_MERIDIAN),
        reply.tries,
    );
    response
}

fn common_headers(
    headers: &mut HeaderMap,
    request_id: HeaderValue,
    handled_by: HeaderValue,
    tries: u32,
) {
    headers.insert(X_REQUEST_ID, request_id);
    headers.insert(X_HANDLED_BY, handled_by);
    headers.insert(X_MERIDIAN_TRIES, tries_value(tries));
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
        let r = error(reply, HeaderValue::from_static("rid"));
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
            },
            HeaderValue::from_static("rid"),
        );
        assert_eq!(r.headers()[X_HANDLED_BY], "a");
        assert_eq!(r.headers()[X_MERIDIAN_TRIES], "2");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }
}
