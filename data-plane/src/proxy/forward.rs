//! Phase: sending the request to an upstream, and to another one if that
//! fails.
//!
//! The original body bytes go out unchanged on the pooled keep-alive client.
//! The policy's `request_timeout_ms` is the deadline of the whole request;
//! a read splits what is left of it between the tries still allowed, so a
//! hung first upstream still leaves time for the retry. The upstream is
//! chosen by [`crate::routing::select`]; when no healthy upstream is left,
//! the network's leader serves; when there is not even a leader, the client
//! gets HTTP 503 saying so. The answer is buffered whole (capped) so that a
//! failure mid-body is still a retryable failure, not a truncated answer.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use meridian_common::chain::MethodClass;
use meridian_common::jsonrpc;
use meridian_common::snapshot::Role;
use serde_json::value::RawValue;

use super::reply::{Answer, ErrorReply};
use super::retry::{MAX_TRIES, may_retry};
use crate::error_chain::error_chain;
use crate::routing::{RoutedNetwork, RoutedUpstream, Tried, select};
use crate::state::Shared;

/// Why one try failed.
#[derive(Debug, thiserror::Error)]
pub enum TryError {
    /// The connection could not be opened: the request never left.
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The upstream answered with a 5xx; its answer is kept in case it is
    /// the last one.
    #[error("answered HTTP {}", .0.status)]
    Status(UpstreamAnswer),
    /// Sent, but the exchange broke (reset, closed mid-body, …).
    #[error("{0}")]
    Transport(String),
    #[error("answer is over {0} bytes")]
    TooLarge(usize),
}

/// An upstream's HTTP answer.
#[derive(Debug)]
pub struct UpstreamAnswer {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Serves `body` (a request of `class`, with error id `id`) from `network`.
pub async fn forward(
    shared: &Shared,
    network: &RoutedNetwork,
    class: MethodClass,
    body: Bytes,
    id: Option<&RawValue>,
) -> Result<Answer, ErrorReply> {
    let span = tracing::Span::current();
    let deadline =
        Instant::now() + Duration::from_millis(u64::from(network.policy.request_timeout_ms));
    let max_tries = network.policy.max_tries.clamp(1, MAX_TRIES);
    let role = match class {
        MethodClass::Write => Role::Write,
        MethodClass::Read | MethodClass::Subscribe => Role::Read,
    };
    let mut tried = Tried::default();
    let mut last: Option<(HeaderValue, TryError)> = None;
    let mut tries = 0;
    while tries < max_tries {
        let Some(upstream) = next_upstream(network, role, &mut tried) else {
            break;
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        let budget = match class {
            // A write gets one real try; it may not spend time on a retry.
            MethodClass::Write => remaining,
            _ => remaining / (max_tries - tries),
        };
        tries += 1;
        span.record("upstream", upstream.id.as_str());
        span.record("tries", tries);
        match try_once(shared, upstream, body.clone(), budget).await {
            Ok(answer) => {
                return Ok(Answer {
                    status: answer.status,
                    content_type: answer.content_type,
                    body: answer.body,
                    handled_by: upstream.handled_by.clone(),
                    tries,
                });
            }
            Err(error) => {
                let retry = may_retry(class, &error);
                tracing::debug!(upstream = %upstream.id, %error, retry, "try failed");
                last = Some((upstream.handled_by.clone(), error));
                if !retry {
                    break;
                }
            }
        }
    }
    Err(give_up(network, last, tries, id))
}

/// The next upstream to try: a healthy one not tried yet, else the leader
/// (once).
fn next_upstream<'n>(
    network: &'n RoutedNetwork,
    role: Role,
    tried: &mut Tried,
) -> Option<&'n RoutedUpstream> {
    // The thread-local rng is not `Send`: use it and drop it before any await.
    let picked = select(network, role, tried, &mut rand::rng());
    if let Some(c) = picked {
        tried.insert(c.index);
        return Some(c.upstream);
    }
    if tried.leader {
        return None;
    }
    let leader = network.leader.as_ref()?;
    tried.leader = true;
    Some(leader)
}

/// The reply after the last try failed (or none could be made).
fn give_up(
    network: &RoutedNetwork,
    last: Option<(HeaderValue, TryError)>,
    tries: u32,
    id: Option<&RawValue>,
) -> ErrorReply {
    let Some((handled_by, error)) = last else {
        return ErrorReply::rejected(
            StatusCode::SERVICE_UNAVAILABLE,
            jsonrpc::RESOURCE_UNAVAILABLE,
            "unavailable",
            format!(
                "network {:?} has no healthy upstream and no leader to fall back to",
                network.id
            ),
        )
        .with_id(id);
    };
    let status = match &error {
        TryError::Status(answer) => answer.status,
        TryError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    };
    let who = handled_by.to_str().unwrap_or("upstream").to_owned();
    ErrorReply {
        status,
        code: jsonrpc::RESOURCE_UNAVAILABLE,
        message: format!("upstream {who} failed after {tries} tries: {error}"),
        id: id.map(ToOwned::to_owned),
        rejected_by: None,
        handled_by: Some(handled_by),
        tries,
    }
}

/// One try on one upstream, within `budget`.
async fn try_once(
    shared: &Shared,
    upstream: &RoutedUpstream,
    body: Bytes,
    budget: Duration,
) -> Result<UpstreamAnswer, TryError> {
    let request = Request::builder()
        .method(Method::POST)
        .uri(upstream.uri.clone())
        .header(header::CONTENT_TYPE, APPLICATION_JSON)
        .body(Full::new(body))
        .map_err(|e| TryError::Connect(format!("cannot build the request: {e}")))?;
    let started = Instant::now();
    let exchange = async {
        let response = shared.client.request(request).await.map_err(|e| {
            let text = error_chain(&e);
            if e.is_connect() {
                TryError::Connect(text)
            } else {
                TryError::Transport(text)
            }
        })?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, shared.max_response_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<LengthLimitError>() {
                    TryError::TooLarge(shared.max_response_bytes)
                } else {
                    TryError::Transport(format!("answer broke off: {e}"))
                }
            })?
            .to_bytes();
        Ok(UpstreamAnswer {
            status: parts.status,
            content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
            body,
        })
    };
    let answer = tokio::time::timeout(budget, exchange)
        .await
        .unwrap_or(Err(TryError::Timeout(budget)))?;
    upstream
        .latency
        .observe_us(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
    if answer.status.is_server_error() {
        return Err(TryError::Status(answer));
    }
    Ok(answer)
}
