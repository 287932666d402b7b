//! One client request through every phase, in order.
//!
//! The routing table is loaded once, lock free, and held for the whole
//! request. One `request` span per request carries network, method,
//! upstream and tries (recorded as they become known); one access log line
//! ([`super::access_log`]) is written when the response is ready; counters
//! are bumped once the status is known, one per call (batch elements count
//! one each).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Body as HttpBody;
use meridian_common::serve::Body;
use tracing::Instrument as _;
use tracing::field::Empty;

use super::access_log::AccessLog;
use super::dispatch::{self, Served};
use super::forward::Ctx;
use super::headers::{X_HANDLED_BY, X_MERIDIAN_TRIES, X_REJECTED_BY};
use super::reply::ErrorReply;
use super::{limits, network, parse, respond};
use crate::balance::Priority;
use crate::routing::RoutedNetwork;
use crate::state::Shared;

/// Serves one client request.
pub async fn handle<B>(shared: Arc<Shared>, request: Request<B>) -> Response<Body>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    let request_id = shared.request_ids.resolve(request.headers());
    let priority = Priority::from_headers(request.headers());
    let mut log = AccessLog::new(started, request_id.clone(), priority);
    let span = tracing::info_span!(
        "request",
        request_id = request_id.to_str().unwrap_or_default(),
        network = Empty,
        method = Empty,
        upstream = Empty,
        tries = Empty,
        status = Empty,
    );
    let table = shared.table.load_full();
    let response = async {
        let response = match network::resolve(&table, request.uri().path()) {
            Ok((network, archive)) => {
                log.network = Some(network.clone());
                tracing::Span::current().record("network", network.id.as_str());
                let ctx = Ctx {
                    deadline: started
                        + Duration::from_millis(u64::from(network.policy.request_timeout_ms)),
                    shared: shared.clone(),
                    network: network.clone(),
                    priority,
                };
                serve_network(&ctx, archive, request, request_id, &mut log).await
            }
            Err(reply) => {
                let requests = &shared.metrics.unrouted;
                requests.record(requests.other(), reply.status);
                respond::error(reply, request_id)
            }
        };
        finish(response, &mut log)
    }
    .instrument(span)
    .await;
    // Outside the span: the line carries every field itself, so the text
    // format need not repeat the span's fields in front of it.
    log.emit();
    response
}

fn finish(response: Response<Body>, log: &mut AccessLog) -> Response<Body> {
    let span = tracing::Span::current();
    span.record("status", response.status().as_u16());
    log.status = response.status();
    let header = |name| response.headers().get(name).cloned();
    log.upstream = header(X_HANDLED_BY);
    log.rejected_by = header(X_REJECTED_BY);
    log.tries = response
        .headers()
        .get(X_MERIDIAN_TRIES)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let upstream = log.upstream.as_ref().and_then(|v| v.to_str().ok());
    span.record("upstream", upstream.unwrap_or_default());
    span.record("tries", log.tries);
    log.response_bytes =
        usize::try_from(response.body().size_hint().exact().unwrap_or(0)).unwrap_or(usize::MAX);
    response
}

/// The phases after the network is known.
async fn serve_network<B>(
    ctx: &Ctx,
    archive: bool,
    request: Request<B>,
    request_id: http::HeaderValue,
    log: &mut AccessLog,
) -> Response<Body>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let network: &RoutedNetwork = &ctx.network;
    let refuse = |reply: ErrorReply, request_id| {
        network
            .requests
            .record(network.requests.other(), reply.status);
        respond::error(reply, request_id)
    };
    if let Err(reply) = network::accept_method(request.method()) {
        return refuse(reply, request_id);
    }
    let (parts, body) = request.into_parts();
    let body = match limits::read_body(&parts.headers, body, network.policy.max_body_bytes).await {
        Ok(body) => body,
        Err(reply) => return refuse(reply, request_id),
    };
    log.request_bytes = body.len();
    let parsed = match parse::parse(&body, network.policy.max_batch) {
        Ok(parsed) => parsed,
        Err(reply) => return refuse(reply, request_id),
    };
    tracing::Span::current().record("method", parsed.label());
    log.method.push_str(parsed.label());
    log.batch_size = parsed.len();

    let Served {
        reply,
        hedged,
        queue_wait,
    } = dispatch::serve(ctx, &parsed, &body, archive).await;
    log.hedged = hedged;
    log.queue_wait = queue_wait;
    let response = match reply {
        Ok(answer) => respond::answer(answer, request_id),
        Err(reply) => respond::error(reply, request_id),
    };
    for call in parsed.calls() {
        network
            .requests
            .record(network.requests.slot(&call.method), response.status());
    }
    if let parse::Parsed::Batch(elements) = &parsed {
        for _ in elements.iter().filter(|e| e.call().is_none()) {
            network
                .requests
                .record(network.requests.other(), response.status());
        }
    }
    response
}
