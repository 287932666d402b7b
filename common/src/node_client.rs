//! The HTTP client both planes use to talk to upstream nodes.
//!
//! One pooled hyper client per process part (control-plane probes, each data
//! plane), speaking HTTP/1.1 and HTTP/2 over plain TCP or rustls. Connections
//! are kept alive and reused: opening one per request would dominate the
//! proxy's cost.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A pooled client to upstream nodes.
pub type NodeClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Tuning of a [`NodeClient`].
#[derive(Debug, Clone)]
pub struct NodeClientOptions {
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// Idle pooled connections are closed after this long.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per upstream host.
    pub pool_max_idle_per_host: usize,
    /// How long the data plane's upstream client uses a host name's
    /// addresses before it resolves the name again (the control plane's
    /// probe client resolves at each new connection; its connections are
    /// few and pooled).
    pub dns_ttl: Duration,
}

impl Default for NodeClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 256,
            dns_ttl: Duration::from_secs(30),
        }
    }
}

/// Builds a client that speaks http and https (webpki roots).
pub fn node_client(options: &NodeClientOptions) -> NodeClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(options.connect_timeout));
    // rustls needs a process-wide crypto provider; installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(options.pool_idle_timeout)
        .pool_max_idle_per_host(options.pool_max_idle_per_host)
        .build(https)
}
