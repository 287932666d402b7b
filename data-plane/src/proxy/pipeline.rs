//! One client request through every phase, in order.
//!
//! The routing table is loaded once, lock free, and held for the whole
//! request. One `request` span per request carries network, method,
//! upstream and tries (recorded as they become known); counters are bumped
//! once the status is known, one per call (batch elements count one each).

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Body as HttpBody;
use meridian_common::serve::Body;
use tracing::Instrument as _;
use tracing::field::Empty;

use super::reply::ErrorReply;
use super::{classify, forward, limits, network, parse, respond};
use crate::routing::RoutedNetwork;
use crate::state::Shared;

/// Serves one client request.
pub async fn handle<B>(shared: Arc<Shared>, request: Request<B>) -> Response<Body>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let request_id = shared.request_ids.resolve(request.headers());
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
    async move {
        let network = match network::resolve(&table, request.uri().path()) {
            Ok(network) => network.clone(),
            Err(reply) => {
                let requests = &shared.metrics.unrouted;
                requests.record(requests.other(), reply.status);
                return finish(respond::error(reply, request_id));
            }
        };
        tracing::Span::current().record("network", network.id.as_str());
        finish(serve_network(&shared, &network, request, request_id).await)
    }
    .instrument(span)
    .await
}

fn finish(response: Response<Body>) -> Response<Body> {
    tracing::Span::current().record("status", response.status().as_u16());
    response
}

/// The phases after the network is known.
async fn serve_network<B>(
    shared: &Shared,
    network: &RoutedNetwork,
    request: Request<B>,
    request_id: http::HeaderValue,
) -> Response<Body>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
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
    let parsed = match parse::parse(&body, network.policy.max_batch) {
        Ok(parsed) => parsed,
        Err(reply) => return refuse(reply, request_id),
    };
    tracing::Span::current().record("method", parsed.label());
    let class = classify::request_class(network.chain, &parsed);

    let response = match forward::forward(shared, network, class, body.clone(), parsed.id()).await {
        Ok(answer) => respond::answer(answer, request_id),
        Err(reply) => respond::error(reply, request_id),
    };
    for call in parsed.calls() {
        network
            .requests
            .record(network.requests.slot(&call.method), response.status());
    }
    response
}
