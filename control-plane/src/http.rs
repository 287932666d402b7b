//! The control plane's small HTTP endpoint: `/health`, `/ready`, `/metrics`.
//!
//! [`respond`] is a plain function of the request line, so tests reach
//! every route without a socket; [`serve`] puts it on the listener with
//! `meridian_common::serve`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use meridian_common::metrics::{CONTENT_TYPE, TextEncoder};
use meridian_common::serve::Body;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::distribute::{DataPlanes, SnapshotStreams};
use crate::inventory::Inventory;
use crate::snapshot::Publisher;

/// Everything the endpoints report on.
#[derive(Debug, Clone)]
pub struct HttpState {
    pub publisher: Arc<Publisher>,
    pub inventory: Arc<Inventory>,
    pub dataplanes: Arc<DataPlanes>,
    pub streams: Arc<SnapshotStreams>,
}

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

/// The response to `method path`.
pub fn respond(state: &HttpState, method: &Method, path: &str) -> Response<Body> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, PLAIN, "use GET\n");
    }
    match path {
        "/health" => text(StatusCode::OK, PLAIN, "ok\n"),
        "/ready" => match state.publisher.current() {
            Some(p) => text(
                StatusCode::OK,
                PLAIN,
                format!("ready, version {}\n", p.version),
            ),
            None => text(
                StatusCode::SERVICE_UNAVAILABLE,
                PLAIN,
                "no snapshot published yet\n",
            ),
        },
        "/metrics" => text(StatusCode::OK, CONTENT_TYPE, metrics(state)),
        _ => text(StatusCode::NOT_FOUND, PLAIN, "not found\n"),
    }
}

/// Prometheus text of the control plane.
pub fn metrics(state: &HttpState) -> String {
    let mut out = TextEncoder::new();
    let version = state.publisher.current_version();
    out.family(
        "meridian_snapshot_version_epoch",
        "gauge",
        "Epoch of the current snapshot version.",
    );
    out.sample("meridian_snapshot_version_epoch", &[], version.epoch);
    out.family(
        "meridian_snapshot_version_seq",
        "gauge",
        "Seq of the current snapshot version.",
    );
    out.sample("meridian_snapshot_version_seq", &[], version.seq);
    out.family(
        "meridian_snapshot_publications_total",
        "counter",
        "Snapshots published since start.",
    );
    out.sample(
        "meridian_snapshot_publications_total",
        &[],
        state.publisher.publications(),
    );
    out.family(
        "meridian_dataplanes_connected",
        "gauge",
        "Data planes with an open snapshot stream.",
    );
    out.sample(
        "meridian_dataplanes_connected",
        &[],
        state.dataplanes.connected_count(),
    );
    let (pushes, acks, nacks) = state.streams.counts();
    out.family(
        "meridian_snapshot_pushes_total",
        "counter",
        "Snapshots pushed on streams.",
    );
    out.sample("meridian_snapshot_pushes_total", &[], pushes);
    out.family(
        "meridian_snapshot_acks_total",
        "counter",
        "Snapshots data planes ACKed.",
    );
    out.sample("meridian_snapshot_acks_total", &[], acks);
    out.family(
        "meridian_snapshot_nacks_total",
        "counter",
        "Snapshots data planes NACKed.",
    );
    out.sample("meridian_snapshot_nacks_total", &[], nacks);
    out.family(
        "meridian_heights_sent_total",
        "counter",
        "Heights messages sent on streams (rule 8 of snapshot.proto).",
    );
    out.sample(
        "meridian_heights_sent_total",
        &[],
        state.streams.heights_sent(),
    );
    state.inventory.render_metrics(&mut out);
    out.finish()
}

/// Serves the endpoints on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, state: Arc<HttpState>, shutdown: watch::Receiver<bool>) {
    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(respond(&state, req.method(), req.uri().path())) }
    });
    meridian_common::serve::serve(listener, service, shutdown, Duration::from_secs(5)).await;
}
