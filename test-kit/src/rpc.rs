//! A small JSON-RPC-over-HTTP client for tests: status, headers and body of
//! every answer, nothing interpreted.
//!
//! Tests talk to data planes and to nodes through it the way a wallet would:
//! a pooled hyper client, `POST` with `content-type: application/json`.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Longest any single test request may take before it counts as failed,
/// so a bug shows up as an error instead of a hung test.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A request that got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("bad request: {0}")]
    Request(#[from] http::Error),
    #[error("transport: {0}")]
    Transport(#[from] hyper_util::client::legacy::Error),
    #[error("reading the body: {0}")]
    Body(#[from] hyper::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct RpcResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl RpcResponse {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (with the body) if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// A header's value as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `x-handled-by`: the upstream (or `leader`) that served the request.
    pub fn handled_by(&self) -> Option<&str> {
        self.header("x-handled-by")
    }

    /// `x-rejected-by`: which of Meridian's own checks refused the request.
    pub fn rejected_by(&self) -> Option<&str> {
        self.header("x-rejected-by")
    }
}

/// A pooled JSON-RPC client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RpcClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for RpcClient {
    fn default() -> Self {
        Self::new()
    }
}

impl RpcClient {
    /// A client with its own connection pool.
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self { client }
    }

    /// POSTs `body` to `url`.
    pub async fn post(
        &self,
        url: impl AsRef<str>,
        body: impl Into<Bytes>,
    ) -> Result<RpcResponse, RpcError> {
        self.post_with_headers(url, body, &[]).await
    }

    /// POSTs `body` to `url` with extra headers.
    pub async fn post_with_headers(
        &self,
        url: impl AsRef<str>,
        body: impl Into<Bytes>,
        headers: &[(&str, &str)],
    ) -> Result<RpcResponse, RpcError> {
        let mut req = Request::post(url.as_ref()).header("content-type", "application/json");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.send(req.body(Full::new(body.into()))?).await
    }

    /// Calls `method` without params (id 1).
    pub async fn call(&self, url: impl AsRef<str>, method: &str) -> Result<RpcResponse, RpcError> {
        self.post(url, request_body(1, method, "[]")).await
    }

    /// `GET url` (admin endpoints: /health, /ready, /metrics).
    pub async fn get(&self, url: impl AsRef<str>) -> Result<RpcResponse, RpcError> {
        self.send(Request::get(url.as_ref()).body(Full::new(Bytes::new()))?)
            .await
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Result<RpcResponse, RpcError> {
        let exchange = async {
            let resp = self.client.request(req).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, RpcError>(RpcResponse {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| RpcError::Timeout(REQUEST_TIMEOUT))?
    }
}

/// A JSON-RPC 2.0 request body; `params` is raw JSON.
pub fn request_body(id: u64, method: &str, params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#)
}
