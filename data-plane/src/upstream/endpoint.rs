//! One upstream URL, ready to be posted to: where to connect, the request
//! head written before every body, and the idle connections kept for it.
//!
//! Built once per upstream when a snapshot is applied and carried to the
//! next snapshot while the upstream's URL stays the same, so its idle
//! connections survive snapshot swaps.

use std::net::IpAddr;

use bytes::Bytes;
use meridian_common::url::parse_node_url;
use rustls::pki_types::ServerName;

use super::pool::IdlePool;
use super::resolve::Resolver;

/// An upstream URL the proxy cannot post to.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("{0}")]
    Url(String),
}

/// Where and how to send requests to one upstream.
#[derive(Debug)]
pub struct Endpoint {
    /// The URL as the snapshot gave it.
    url: String,
    /// Host to resolve and connect to (brackets of an IPv6 literal removed).
    pub(super) host: String,
    pub(super) port: u16,
    /// The host's addresses, cached.
    pub(super) resolver: Resolver,
    /// The URL's path without its query or a trailing `/`: what a path
    /// sent after it ([`super::UpstreamPath::Append`]) follows.
    pub(super) base_path: Box<[u8]>,
    /// The URL's query (without `?`), kept in front of a client's.
    pub(super) url_query: Option<Box<[u8]>>,
    /// The name the TLS certificate must carry; `None` for plain http.
    pub(super) tls: Option<ServerName<'static>>,
    /// `POST <path> HTTP/1.1`, `host`, `content-type` and the
    /// `content-length: ` name, written before every body's length.
    pub(super) head: Bytes,
    /// Where `head` goes on after the URL's path (at ` HTTP/1.1`), for a
    /// request sent to another path.
    pub(super) after_path: usize,
    /// Connections to this upstream waiting for the next request.
    pub(super) idle: IdlePool,
}

impl Endpoint {
    /// Prepares `url`: the same URLs the snapshot checks accept
    /// ([`parse_node_url`]), refused here again rather than trusted.
    pub fn new(url: &str) -> Result<Self, EndpointError> {
        let uri = parse_node_url(url).map_err(|e| EndpointError::Url(e.to_string()))?;
        let tls = uri.scheme_str() == Some("https");
        let authority = uri
            .authority()
            .ok_or_else(|| EndpointError::Url("no host".into()))?;
        let host = authority.host();
        let bare_host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let server_name = if tls {
            let name = match bare_host.parse::<IpAddr>() {
                Ok(ip) => ServerName::IpAddress(ip.into()),
                Err(_) => ServerName::try_from(bare_host.clone())
                    .map_err(|e| EndpointError::Url(format!("not a TLS server name: {e}")))?,
            };
            Some(name)
        } else {
            None
        };
        // The host header names the authority without user info, with the
        // port only when the URL gave one.
        let host_header = match authority.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let path = if path.is_empty() { "/" } else { path };
        let base_path = uri.path().trim_end_matches('/').as_bytes().into();
        let url_query = uri.query().map(|q| q.as_bytes().into());
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {host_header}\r\ncontent-type: application/json\r\ncontent-length: "
        );
        let after_path = "POST ".len() + path.len();
        Ok(Self {
            url: url.to_owned(),
            resolver: Resolver::new(&bare_host, port),
            host: bare_host,
            port,
            base_path,
            url_query,
            tls: server_name,
            head: Bytes::from(head),
            after_path,
            idle: IdlePool::default(),
        })
    }

    /// The URL this endpoint was built from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Idle connections held right now.
    pub fn idle_connections(&self) -> usize {
        self.idle.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepares_the_request_head() {
        let e = Endpoint::new("http://127.0.0.1:8545").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.tls.is_none()),
            ("127.0.0.1", 8545, true)
        );
        assert_eq!(
            &e.head[..],
            b"POST / HTTP/1.1\r\nhost: 127.0.0.1:8545\r\ncontent-type: application/json\r\ncontent-length: "
        );
        let e = Endpoint::new("https://user:pw@node.example/v3/key?x=1").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("node.example", 443));
        assert!(
            e.head
                .starts_with(b"POST /v3/key?x=1 HTTP/1.1\r\nhost: node.example\r\n")
        );
        assert!(matches!(e.tls, Some(ServerName::DnsName(_))));
        assert_eq!(
            (&*e.base_path, e.url_query.as_deref()),
            (&b"/v3/key"[..], Some(&b"x=1"[..]))
        );
        assert!(e.head[e.after_path..].starts_with(b" HTTP/1.1\r\nhost: node.example\r\n"));
        let e = Endpoint::new("https://[::1]:8443/").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 8443));
        assert!(matches!(e.tls, Some(ServerName::IpAddress(_))));
        assert_eq!((&*e.base_path, e.url_query.as_deref()), (&b""[..], None));
        assert!(
            e.head
                .starts_with(b"POST / HTTP/1.1\r\nhost: [::1]:8443\r\n")
        );
    }

    #[test]
    fn refuses_what_it_cannot_post_to() {
        for url in ["ftp://x", "not a url", "/relative"] {
            assert!(Endpoint::new(url).is_err(), "{url}");
        }
    }
}
