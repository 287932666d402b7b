//! One connection to an upstream: plain TCP or rustls over TCP, with the
//! read buffer it keeps between requests.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::FutureExt as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::endpoint::Endpoint;

/// Initial read buffer of a connection; answers to most calls fit.
const READ_BUFFER: usize = 4 * 1024;

/// The byte stream under a connection.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A connection, idle or carrying one exchange.
#[derive(Debug)]
pub struct Conn {
    pub stream: Stream,
    /// Bytes read and not yet consumed; kept (empty) between requests so
    /// its allocation is reused.
    pub buf: BytesMut,
    /// When it last finished an exchange (for the idle timeout).
    pub last_used: Instant,
}

/// Opening a connection failed; the request was never sent.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("{host} resolves to no address")]
    NoAddress { host: String },
    #[error("connect to {addr}: {source}")]
    Tcp {
        addr: std::net::SocketAddr,
        source: io::Error,
    },
    #[error("no connection to {host}:{port} within {timeout:?}")]
    Timeout {
        host: String,
        port: u16,
        timeout: Duration,
    },
    #[error("TLS handshake with {host}: {source}")]
    Tls { host: String, source: io::Error },
}

impl Conn {
    /// Opens a connection to `endpoint` within `timeout` (resolution, TCP
    /// and TLS handshake together), its host's addresses cached for
    /// `dns_ttl`.
    pub async fn open(
        endpoint: &Endpoint,
        tls: &Arc<rustls::ClientConfig>,
        timeout: Duration,
        dns_ttl: Duration,
    ) -> Result<Self, ConnectError> {
        tokio::time::timeout(timeout, Self::open_now(endpoint, tls, dns_ttl))
            .await
            .unwrap_or_else(|_| {
                Err(ConnectError::Timeout {
                    host: endpoint.host.clone(),
                    port: endpoint.port,
                    timeout,
                })
            })
    }

    async fn open_now(
        endpoint: &Endpoint,
        tls: &Arc<rustls::ClientConfig>,
        dns_ttl: Duration,
    ) -> Result<Self, ConnectError> {
        let host = endpoint.host.as_str();
        let addrs =
            endpoint
                .resolver
                .addrs(dns_ttl)
                .await
                .map_err(|source| ConnectError::Resolve {
                    host: host.to_owned(),
                    source,
                })?;
        let mut last = None;
        let mut tcp = None;
        for &addr in addrs.iter() {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(source) => last = Some(ConnectError::Tcp { addr, source }),
            }
        }
        let tcp = match (tcp, last) {
            (Some(tcp), _) => tcp,
            (None, Some(e)) => {
                // The node may have moved: ask again at the next connect.
                endpoint.resolver.forget();
                return Err(e);
            }
            (None, None) => {
                return Err(ConnectError::NoAddress {
                    host: host.to_owned(),
                });
            }
        };
        // Requests are small and written whole: send them at once.
        let _ = tcp.set_nodelay(true);
        let stream = match &endpoint.tls {
            None => Stream::Plain(tcp),
            Some(name) => {
                let tls = TlsConnector::from(tls.clone())
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|source| ConnectError::Tls {
                        host: host.to_owned(),
                        source,
                    })?;
                Stream::Tls(Box::new(tls))
            }
        };
        Ok(Self {
            stream,
            buf: BytesMut::with_capacity(READ_BUFFER),
            last_used: Instant::now(),
        })
    }

    /// Whether an idle connection can carry a request: the upstream has
    /// neither closed it nor sent anything unasked. Polls the stream once
    /// without waiting (through TLS, so a late session ticket is consumed
    /// rather than mistaken for garbage).
    pub fn is_reusable(&mut self) -> bool {
        let mut probe = [0u8; 1];
        // Anything but "would wait" — closed (0 bytes), data nobody asked
        // for, an error — and the connection is not reused.
        self.stream.read(&mut probe).now_or_never().is_none()
    }

    /// Makes sure the read buffer has room for a read.
    pub fn reserve_read(&mut self) {
        if self.buf.capacity() - self.buf.len() < READ_BUFFER / 4 {
            self.buf.reserve(READ_BUFFER);
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
