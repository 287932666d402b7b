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
use http::{HeaderValue, Method};
use tracing::Instrument as _;
use tracing::field::Empty;

use super::access_log::AccessLog;
use super::dispatch::{self, Served};
use super::forward::Ctx;
use super::limits::RequestBody;
use super::reply::ErrorReply;
use super::respond::ClientResponse;
use super::{network, parse, respond};
use crate::balance::Priority;
use crate::routing::RoutedNetwork;
use crate::state::Shared;
use crate::upstream::{RequestLine, UpstreamPath, Verb};

/// A client request's head, as the server that read it hands it over,
/// and its body, still unread.
#[derive(Debug)]
pub struct ClientRequest<'a, B> {
    pub method: &'a Method,
    pub path: &'a str,
    /// The network of the listener the request came in on, when that
    /// listener is bound to one (`--network-listen`).
    pub network: Option<&'a str>,
    /// The `Host` the client named (a network may be served at it).
    pub host: Option<&'a str>,
    /// From [`crate::proxy::request_id::RequestIds`].
    pub request_id: HeaderValue,
    pub priority: Priority,
    pub body: B,
}

/// Serves one client request.
pub async fn handle<B: RequestBody>(
    shared: &Arc<Shared>,
    request: ClientRequest<'_, B>,
) -> ClientResponse {
    let started = Instant::now();
    let mut log = AccessLog::new(started, &request.request_id, request.priority);
    let span = tracing::info_span!(
        "request",
        request_id = request.request_id.to_str().unwrap_or_default(),
        network = Empty,
        method = Empty,
        upstream = Empty,
        tries = Empty,
        status = Empty,
    );
    let table = shared.table.load_full();
    let response = async {
        let response = match network::resolve(&table, request.network, request.host, request.path) {
            Ok(network::Resolved {
                network,
                route,
                rest,
            }) => {
                log.network = Some(network.clone());
                tracing::Span::current().record("network", network.id.as_str());
                let ctx = Ctx {
                    deadline: started
                        + Duration::from_millis(u64::from(network.policy.request_timeout_ms)),
                    shared: shared.clone(),
                    network: network.clone(),
                    priority: request.priority,
                    line: if route.forward {
                        RequestLine {
                            verb: Verb::Post,
                            path: UpstreamPath::Replace(Bytes::copy_from_slice(rest.as_bytes())),
                        }
                    } else {
                        RequestLine::URL
                    },
                };
                serve_network(&ctx, route.archive, request, &mut log).await
            }
            Err(reply) => {
                let requests = &shared.metrics.unrouted;
                requests.record(requests.other(), reply.status);
                respond::error(reply, request.request_id)
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

fn finish(response: ClientResponse, log: &mut AccessLog) -> ClientResponse {
    let span = tracing::Span::current();
    span.record("status", response.status.as_u16());
    log.status = response.status;
    log.upstream = Some(response.handled_by.clone());
    log.rejected_by = response.rejected_by.clone();
    log.cache = response.cache.clone();
    log.tries = response.tries;
    span.record("upstream", response.handled_by.to_str().unwrap_or_default());
    span.record("tries", log.tries);
    log.response_bytes = response.body.len();
    response
}

/// The phases after the network is known.
async fn serve_network<B: RequestBody>(
    ctx: &Ctx,
    archive: bool,
    request: ClientRequest<'_, B>,
    log: &mut AccessLog,
) -> ClientResponse {
    let request_id = request.request_id;
    let network: &RoutedNetwork = &ctx.network;
    let refuse = |reply: ErrorReply, request_id| {
        network
            .requests
            .record(network.requests.other(), reply.status);
        respond::error(reply, request_id)
    };
    if let Err(reply) = network::accept_method(request.method) {
        return refuse(reply, request_id);
    }
    let body = match request.body.read(network.policy.max_body_bytes).await {
        Ok(body) => body,
        Err(reply) => return refuse(reply, request_id),
    };
    log.request_bytes = body.len();
    let parsed = match parse::parse(&body, network.policy.max_batch) {
        Ok(parsed) => parsed,
        Err(reply) => return refuse(reply, request_id),
    };
    tracing::Span::current().record("method", parsed.label());
    if log.on {
        log.method.push_str(parsed.label());
    }
    log.batch_size = parsed.len();

    let Served {
        reply,
        hedged,
        queue_wait,
    } = dispatch::serve(ctx, &parsed, archive).await;
    log.hedged = hedged;
    log.queue_wait = queue_wait;
    let response = match reply {
        Ok(answer) => respond::answer(answer, request_id),
        Err(reply) => respond::error(reply, request_id),
    };
    for call in parsed.calls() {
        network
            .requests
            .record(network.requests.slot(&call.method), response.status);
    }
    if let parse::Parsed::Batch(elements) = &parsed {
        for _ in elements.iter().filter(|e| e.call().is_none()) {
            network
                .requests
                .record(network.requests.other(), response.status);
        }
    }
    response
}
