//! The admin listener: `/health`, `/ready`, `/metrics` and `/cache` (the
//! response cache per network, as JSON).
//!
//! `/health` answers 200 while the process serves at all; `/ready` only once
//! a snapshot is loaded (from the control plane or from disk), so a load
//! balancer sends no clients to a data plane that can route nothing.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use meridian_common::metrics::CONTENT_TYPE;
use meridian_common::serve::Body;
use meridian_common::time::unix_ms;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics;
use crate::state::Shared;

/// Answers one admin request.
pub fn respond<B>(shared: &Shared, request: &Request<B>) -> Response<Body> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match request.uri().path() {
        "/health" => text(StatusCode::OK, "ok\n"),
        "/ready" => {
            let table = shared.table.load();
            if table.is_loaded() {
                text(
                    StatusCode::OK,
                    format!("ready: snapshot {}\n", table.meta.version),
                )
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: no snapshot loaded\n",
                )
            }
        }
        "/metrics" => {
            let body = metrics::render(
                &shared.metrics,
                &shared.table.load(),
                shared.cache.as_ref(),
                unix_ms(),
            );
            let mut response = text(StatusCode::OK, body);
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            response
        }
        "/cache" => {
            let body = crate::cache::report::render(shared.cache.as_ref(), &shared.table.load());
            let mut response = text(StatusCode::OK, body);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /health, /ready, /metrics, /cache\n",
        ),
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Serves the admin endpoints on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let service = service_fn(move |request| {
        let response = respond(&shared, &request);
        async move { Ok::<_, Infallible>(response) }
    });
    meridian_common::serve::serve(listener, service, shutdown, drain).await;
}
