//! One POST to an upstream and its whole answer, on a pooled connection,
//! driven inside the request's own task.
//!
//! The request is written in one `write` (head and body together when the
//! body is small), the answer read straight into the connection's buffer
//! and framed by [`super::response`]. A connection goes back to its pool
//! only after a complete answer that allows it; a try that times out or
//! loses a hedge drops its future and with it the connection, which is
//! then closed — never reused with an answer still in flight.

use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf as _, Bytes};
use http::{HeaderValue, StatusCode};
use meridian_common::node_client::NodeClientOptions;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::conn::{Conn, ConnectError};
use super::endpoint::Endpoint;
use super::request::{RequestLine, UpstreamPath, Verb};
use super::response::{Chunked, ChunkedError, Framing, Head, ProtocolError, parse_head};

/// Bodies up to this size are copied behind the head and written in one
/// `write`; larger ones are written from where they are.
const COPY_BODY_UP_TO: usize = 16 * 1024;
/// Answers up to this size are copied out of the read buffer, so the
/// buffer's allocation is reused by the next exchange on the connection.
const COPY_ANSWER_UP_TO: usize = 16 * 1024;

/// An upstream's complete answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// No connection could be opened: the request never left.
    #[error("cannot connect: {0}")]
    Connect(#[from] ConnectError),
    /// Sent (or maybe sent), but the exchange broke.
    #[error("{0}")]
    Transport(String),
    /// The answer is not HTTP as the proxy accepts it.
    #[error("{0}")]
    Protocol(#[from] ProtocolError),
    /// The answer's body is over the limit.
    #[error("answer is over {0} bytes")]
    TooLarge(usize),
}

/// How the upstream client connects and pools.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    tls: Arc<rustls::ClientConfig>,
    options: NodeClientOptions,
}

impl UpstreamClient {
    /// A client verifying TLS against the webpki roots, speaking HTTP/1.1.
    pub fn new(options: NodeClientOptions) -> Self {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        Self::with_roots(options, roots)
    }

    /// A client verifying TLS against `roots` (a private CA's nodes, tests).
    pub fn with_roots(options: NodeClientOptions, roots: rustls::RootCertStore) -> Self {
        // rustls needs a process-wide crypto provider; installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            tls: Arc::new(tls),
            options,
        }
    }

    /// POSTs `body` (JSON) to `endpoint` and reads the whole answer, its
    /// body capped at `max_answer` bytes. `idempotent`: the request may be
    /// sent twice; otherwise every idle connection is polled before it is
    /// used (see [`super::pool::VERIFY_AFTER`]).
    ///
    /// `started` is when the caller began the exchange (its clock read is
    /// reused for the idle check); the answer comes with the instant it
    /// was read in full, which is also when the connection went back to
    /// the pool: two clock reads per exchange, not four.
    /// Sends `body` to `endpoint` with the verb and at the path of `line`.
    pub async fn send(
        &self,
        endpoint: &Endpoint,
        line: &RequestLine,
        body: &Bytes,
        max_answer: usize,
        idempotent: bool,
        started: Instant,
    ) -> Result<(Answer, Instant), ExchangeError> {
        let idle = endpoint
            .idle
            .take(started, self.options.pool_idle_timeout, !idempotent);
        let mut conn = match idle {
            Some(conn) => conn,
            None => {
                let options = &self.options;
                Conn::open(
                    endpoint,
                    &self.tls,
                    options.connect_timeout,
                    options.dns_ttl,
                )
                .await?
            }
        };
        let (answer, reuse) = round_trip(&mut conn, endpoint, line, body, max_answer).await?;
        let finished = Instant::now();
        if reuse {
            endpoint
                .idle
                .put(conn, self.options.pool_max_idle_per_host, finished);
        }
        Ok((answer, finished))
    }

    /// Closes idle connections past the idle timeout or closed by the
    /// upstream.
    pub fn sweep(&self, endpoint: &Endpoint) {
        endpoint.idle.sweep(self.options.pool_idle_timeout);
    }

    /// How long connections may stay idle.
    pub fn idle_timeout(&self) -> Duration {
        self.options.pool_idle_timeout
    }
}

/// Writes the request and reads the answer; also says whether the
/// connection can carry the next request.
async fn round_trip(
    conn: &mut Conn,
    endpoint: &Endpoint,
    line: &RequestLine,
    body: &Bytes,
    max_answer: usize,
) -> Result<(Answer, bool), ExchangeError> {
    write_request(conn, endpoint, line, body)
        .await
        .map_err(|e| transport("sending the request", &e))?;
    conn.buf.clear();
    let head = loop {
        if let Some((len, head)) = parse_head(&conn.buf)? {
            conn.buf.advance(len);
            if head.status.is_informational() {
                continue;
            }
            break head;
        }
        if !read_more(conn).await? {
            return Err(broke_off(if conn.buf.is_empty() {
                "before an answer"
            } else {
                "in the answer's head"
            }));
        }
    };
    let (body, complete) = read_body(conn, &head, max_answer).await?;
    // Bytes after a complete answer were never asked for: do not reuse.
    let reuse = head.keep_alive && complete && conn.buf.is_empty();
    conn.buf.clear();
    Ok((
        Answer {
            status: head.status,
            content_type: head.content_type,
            body,
        },
        reuse,
    ))
}

async fn write_request(
    conn: &mut Conn,
    endpoint: &Endpoint,
    line: &RequestLine,
    body: &Bytes,
) -> std::io::Result<()> {
    let mut length = itoa::Buffer::new();
    let length = length.format(body.len()).as_bytes();
    // The read buffer is empty between exchanges: borrow it to assemble
    // the request.
    let out = &mut conn.buf;
    out.clear();
    if *line == RequestLine::URL {
        out.extend_from_slice(&endpoint.head);
    } else {
        out.extend_from_slice(line.verb.as_str().as_bytes());
        out.extend_from_slice(b" ");
        match &line.path {
            // The URL's path and query, as the prepared head has them.
            UpstreamPath::Url => {
                out.extend_from_slice(
                    &endpoint.head[Verb::Post.as_str().len() + 1..endpoint.after_path],
                );
            }
            UpstreamPath::Replace(path) => out.extend_from_slice(path),
            UpstreamPath::Append { path, query } => {
                out.extend_from_slice(&endpoint.base_path);
                out.extend_from_slice(path);
                let queries = endpoint
                    .url_query
                    .as_deref()
                    .into_iter()
                    .chain(query.as_deref());
                for (i, q) in queries.enumerate() {
                    out.extend_from_slice(if i == 0 { b"?" } else { b"&" });
                    out.extend_from_slice(q);
                }
            }
        }
        out.extend_from_slice(&endpoint.head[endpoint.after_path..]);
    }
    out.extend_from_slice(length);
    out.extend_from_slice(b"\r\n\r\n");
    if body.len() <= COPY_BODY_UP_TO {
        out.extend_from_slice(body);
        conn.stream.write_all(&conn.buf).await?;
    } else {
        let mut head = &conn.buf[..];
        let mut rest = &body[..];
        while !head.is_empty() || !rest.is_empty() {
            let n = conn
                .stream
                .write_vectored(&[IoSlice::new(head), IoSlice::new(rest)])
                .await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            let from_head = n.min(head.len());
            head = &head[from_head..];
            rest = &rest[n - from_head..];
        }
    }
    conn.stream.flush().await
}

/// Reads the body framed by `head`; also says whether it ended where its
/// framing says (so the connection is in a known state).
async fn read_body(
    conn: &mut Conn,
    head: &Head,
    max: usize,
) -> Result<(Bytes, bool), ExchangeError> {
    match head.framing {
        Framing::Empty => Ok((Bytes::new(), true)),
        Framing::Length(len) => {
            if len > max {
                return Err(ExchangeError::TooLarge(max));
            }
            if conn.buf.len() < len {
                conn.buf.reserve(len - conn.buf.len());
            }
            while conn.buf.len() < len {
                read_required(conn, "in the answer's body").await?;
            }
            let body = if len <= COPY_ANSWER_UP_TO {
                let body = Bytes::copy_from_slice(&conn.buf[..len]);
                conn.buf.advance(len);
                body
            } else {
                conn.buf.split_to(len).freeze()
            };
            Ok((body, true))
        }
        Framing::Chunked => {
            let mut decoder = Chunked::default();
            loop {
                match decoder.decode(&mut conn.buf, max) {
                    Ok(true) => return Ok((decoder.into_body().freeze(), true)),
                    Ok(false) => {}
                    Err(ChunkedError::TooLarge(max)) => return Err(ExchangeError::TooLarge(max)),
                    Err(ChunkedError::Protocol(e)) => return Err(e.into()),
                }
                read_required(conn, "in the answer's chunked body").await?;
            }
        }
        Framing::UntilClose => {
            loop {
                if conn.buf.len() > max {
                    return Err(ExchangeError::TooLarge(max));
                }
                if !read_more(conn).await? {
                    break;
                }
            }
            let body = conn.buf.split().freeze();
            Ok((body, false))
        }
    }
}

/// Reads more of the answer into the buffer; `false` when the upstream
/// closed the connection.
async fn read_more(conn: &mut Conn) -> Result<bool, ExchangeError> {
    conn.reserve_read();
    match conn.stream.read_buf(&mut conn.buf).await {
        Ok(n) => Ok(n > 0),
        Err(e) => Err(transport("reading the answer", &e)),
    }
}

/// Reads more of an answer that cannot end here; a close is an answer
/// broken off `where_`.
async fn read_required(conn: &mut Conn, where_: &str) -> Result<(), ExchangeError> {
    if read_more(conn).await? {
        Ok(())
    } else {
        Err(broke_off(where_))
    }
}

fn transport(what: &str, e: &std::io::Error) -> ExchangeError {
    ExchangeError::Transport(format!("{what}: {e}"))
}

fn broke_off(where_: &str) -> ExchangeError {
    ExchangeError::Transport(format!("connection closed {where_}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    /// What the scripted node does with one request.
    #[derive(Clone)]
    enum Step {
        /// Writes these bytes and keeps the connection.
        Answer(&'static str),
        /// Writes these bytes and closes the connection.
        AnswerAndClose(&'static str),
    }

    /// A raw TCP "node" answering requests with scripted bytes, counting
    /// the connections it accepted and keeping the requests it read.
    struct Node {
        url: String,
        accepted: Arc<AtomicUsize>,
        /// Connections the node has closed.
        closed: Arc<AtomicUsize>,
        requests: Arc<Mutex<Vec<String>>>,
    }

    impl Node {
        async fn start(steps: Vec<Step>) -> Node {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/rpc", listener.local_addr().unwrap());
            Self::spawn(listener, url, None, steps)
        }

        /// The same node behind TLS, with a fresh self-signed certificate
        /// for `localhost`; also the root store that trusts it.
        async fn start_tls(steps: Vec<Step>) -> (Node, rustls::RootCertStore) {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let rcgen::CertifiedKey { cert, signing_key } =
                rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
            let key = rustls::pki_types::PrivateKeyDer::Pkcs8(signing_key.serialize_der().into());
            let config = rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(vec![cert.der().clone()], key)
                .unwrap();
            let mut roots = rustls::RootCertStore::empty();
            roots.add(cert.der().clone()).unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!(
                "https://localhost:{}/rpc",
                listener.local_addr().unwrap().port()
            );
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
            (Self::spawn(listener, url, Some(acceptor), steps), roots)
        }

        fn spawn(
            listener: TcpListener,
            url: String,
            tls: Option<tokio_rustls::TlsAcceptor>,
            steps: Vec<Step>,
        ) -> Node {
            let accepted = Arc::new(AtomicUsize::new(0));
            let requests = Arc::new(Mutex::new(Vec::new()));
            let steps = Arc::new(Mutex::new(steps.into_iter()));
            let closed = Arc::new(AtomicUsize::new(0));
            let (a, c, r) = (accepted.clone(), closed.clone(), requests.clone());
            tokio::spawn(async move {
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    a.fetch_add(1, Ordering::SeqCst);
                    let (c, steps, r, tls) = (c.clone(), steps.clone(), r.clone(), tls.clone());
                    tokio::spawn(async move {
                        match tls {
                            None => serve(stream, steps, r).await,
                            Some(acceptor) => {
                                if let Ok(stream) = acceptor.accept(stream).await {
                                    serve(stream, steps, r).await;
                                }
                            }
                        }
                        c.fetch_add(1, Ordering::SeqCst);
                    });
                }
            });
            Node {
                url,
                accepted,
                closed,
                requests,
            }
        }

        fn accepted(&self) -> usize {
            self.accepted.load(Ordering::SeqCst)
        }

        /// Waits (at most 10 s) until the node has closed a connection.
        async fn wait_closed(&self) {
            let closed = async {
                while self.closed.load(Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            };
            tokio::time::timeout(Duration::from_secs(10), closed)
                .await
                .unwrap();
        }
    }

    type Steps = Arc<Mutex<std::vec::IntoIter<Step>>>;

    async fn serve<S>(mut stream: S, steps: Steps, requests: Arc<Mutex<Vec<String>>>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let mut buf = Vec::new();
        loop {
            // One request: the head, then content-length bytes.
            let request = loop {
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .unwrap()
                        .parse()
                        .unwrap();
                    if buf.len() >= end + 4 + len {
                        let request = String::from_utf8_lossy(&buf[..end + 4 + len]).to_string();
                        buf.drain(..end + 4 + len);
                        break request;
                    }
                }
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            requests.lock().unwrap().push(request);
            let step = steps.lock().unwrap().next();
            match step {
                Some(Step::Answer(bytes)) => stream.write_all(bytes.as_bytes()).await.unwrap(),
                Some(Step::AnswerAndClose(bytes)) => {
                    stream.write_all(bytes.as_bytes()).await.unwrap();
                    return;
                }
                None => return,
            }
        }
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 35\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1}";
    const BODY: &str = r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}"#;

    fn client() -> UpstreamClient {
        UpstreamClient::new(NodeClientOptions::default())
    }

    async fn post(
        client: &UpstreamClient,
        e: &Endpoint,
        idempotent: bool,
    ) -> Result<Answer, ExchangeError> {
        client
            .send(
                e,
                &RequestLine::URL,
                &Bytes::from_static(BODY.as_bytes()),
                1024,
                idempotent,
                Instant::now(),
            )
            .await
            .map(|(answer, _)| answer)
    }

    #[tokio::test]
    async fn speaks_tls_verifies_the_node_and_reuses_the_session() {
        let (node, roots) = Node::start_tls(vec![Step::Answer(OK); 4]).await;
        let trusting = UpstreamClient::with_roots(NodeClientOptions::default(), roots);
        let endpoint = Endpoint::new(&node.url).unwrap();
        for _ in 0..3 {
            let answer = post(&trusting, &endpoint, true).await.unwrap();
            assert_eq!(&answer.body[..], br#"{"jsonrpc":"2.0","id":1,"result":1}"#);
        }
        assert_eq!(node.accepted(), 1, "one TLS connection for three requests");
        // A write polls its idle connection first: the session ticket the
        // node sent after the handshake must not read as garbage.
        assert_eq!(
            post(&trusting, &endpoint, false).await.unwrap().status,
            StatusCode::OK
        );
        assert_eq!(node.accepted(), 1);
        let requests = node.requests.lock().unwrap().clone();
        assert!(requests[0].contains("host: localhost:"), "{}", requests[0]);

        // Without the node's root the handshake fails, and nothing is sent.
        let (untrusted, _) = Node::start_tls(vec![Step::Answer(OK)]).await;
        let endpoint = Endpoint::new(&untrusted.url).unwrap();
        let err = post(&client(), &endpoint, true).await.unwrap_err();
        assert!(
            matches!(err, ExchangeError::Connect(ConnectError::Tls { .. })),
            "{err:?}"
        );
        assert!(untrusted.requests.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn sends_the_verb_and_path_of_the_request_line() {
        let node = Node::start(vec![Step::Answer(OK); 4]).await;
        let client = client();
        // The URL has a path and a query of its own.
        let endpoint = Endpoint::new(&format!("{}?key=k", node.url)).unwrap();
        let send = |line: RequestLine, body: &'static str| {
            let (client, endpoint) = (&client, &endpoint);
            async move {
                client
                    .send(
                        endpoint,
                        &line,
                        &Bytes::from_static(body.as_bytes()),
                        1024,
                        true,
                        Instant::now(),
                    )
                    .await
                    .unwrap()
            }
        };
        let append = |path: &'static str, query: Option<&'static str>| UpstreamPath::Append {
            path: Bytes::from_static(path.as_bytes()),
            query: query.map(|q| Bytes::from_static(q.as_bytes())),
        };
        send(
            RequestLine {
                verb: Verb::Get,
                path: append("/v2/history/get_actions", Some("account=eosio&limit=1")),
            },
            "",
        )
        .await;
        send(
            RequestLine {
                verb: Verb::Post,
                path: append("/v1/chain/get_info", None),
            },
            "{}",
        )
        .await;
        send(
            RequestLine {
                verb: Verb::Post,
                path: UpstreamPath::Replace(Bytes::from_static(b"/api/v3/icon_dex")),
            },
            "{}",
        )
        .await;
        send(
            RequestLine {
                verb: Verb::Get,
                path: UpstreamPath::Url,
            },
            "",
        )
        .await;
        let lines: Vec<String> = node
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.lines().next().unwrap().to_owned())
            .collect();
        assert_eq!(
            lines,
            [
                "GET /rpc/v2/history/get_actions?key=k&account=eosio&limit=1 HTTP/1.1",
                "POST /rpc/v1/chain/get_info?key=k HTTP/1.1",
                "POST /api/v3/icon_dex HTTP/1.1",
                "GET /rpc?key=k HTTP/1.1",
            ]
        );
        assert!(node.requests.lock().unwrap()[0].ends_with("content-length: 0\r\n\r\n"));
    }

    #[tokio::test]
    async fn reuses_one_connection_for_consecutive_requests() {
        let node = Node::start(vec![Step::Answer(OK); 3]).await;
        let (client, endpoint) = (client(), Endpoint::new(&node.url).unwrap());
        for _ in 0..3 {
            let answer = post(&client, &endpoint, true).await.unwrap();
            assert_eq!(answer.status, StatusCode::OK);
            assert_eq!(answer.content_type.unwrap(), "application/json");
            assert_eq!(&answer.body[..], br#"{"jsonrpc":"2.0","id":1,"result":1}"#);
        }
        assert_eq!(node.accepted(), 1);
        assert_eq!(endpoint.idle_connections(), 1);
        let requests = node.requests.lock().unwrap().clone();
        let host = node
            .url
            .trim_start_matches("http://")
            .trim_end_matches("/rpc");
        assert_eq!(
            requests[0],
            format!(
                "POST /rpc HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{BODY}",
                BODY.len()
            )
        );
    }

    #[tokio::test]
    async fn reads_chunked_interim_and_until_close_answers() {
        let node = Node::start(vec![
            Step::Answer(
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n",
            ),
            Step::AnswerAndClose("HTTP/1.1 200 OK\r\n\r\n{\"b\":2}"),
            Step::Answer(OK),
        ])
        .await;
        let (client, endpoint) = (client(), Endpoint::new(&node.url).unwrap());
        let answer = post(&client, &endpoint, true).await.unwrap();
        assert_eq!(&answer.body[..], br#"{"a":1}"#);
        let answer = post(&client, &endpoint, true).await.unwrap();
        assert_eq!(&answer.body[..], br#"{"b":2}"#);
        // Read until close: that connection is gone, the next is new.
        assert_eq!(endpoint.idle_connections(), 0);
        post(&client, &endpoint, true).await.unwrap();
        assert_eq!(node.accepted(), 2);
    }

    #[tokio::test]
    async fn connection_close_is_honoured() {
        let close = "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}";
        let node = Node::start(vec![Step::Answer(close), Step::Answer(OK)]).await;
        let (client, endpoint) = (client(), Endpoint::new(&node.url).unwrap());
        post(&client, &endpoint, true).await.unwrap();
        assert_eq!(endpoint.idle_connections(), 0);
        post(&client, &endpoint, true).await.unwrap();
        assert_eq!(node.accepted(), 2);
    }

    #[tokio::test]
    async fn a_write_never_goes_out_on_a_connection_the_node_closed() {
        let node = Node::start(vec![Step::AnswerAndClose(OK), Step::Answer(OK)]).await;
        let (client, endpoint) = (client(), Endpoint::new(&node.url).unwrap());
        post(&client, &endpoint, true).await.unwrap();
        // The node closed without saying so: the connection looks idle and
        // reusable until it is polled.
        assert_eq!(endpoint.idle_connections(), 1);
        node.wait_closed().await;
        // A write polls the idle connection first, finds it closed and opens
        // another: sent once, answered.
        let answer = post(&client, &endpoint, false).await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(node.accepted(), 2);
        assert_eq!(node.requests.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn the_sweep_closes_connections_closed_by_the_node_or_idle_too_long() {
        let closing = Node::start(vec![Step::AnswerAndClose(OK)]).await;
        let open = Node::start(vec![Step::Answer(OK)]).await;
        let client = client();
        let (a, b) = (
            Endpoint::new(&closing.url).unwrap(),
            Endpoint::new(&open.url).unwrap(),
        );
        post(&client, &a, true).await.unwrap();
        post(&client, &b, true).await.unwrap();
        assert_eq!((a.idle_connections(), b.idle_connections()), (1, 1));
        closing.wait_closed().await;
        // Within the idle timeout: only the one the node closed goes.
        client.sweep(&a);
        client.sweep(&b);
        assert_eq!((a.idle_connections(), b.idle_connections()), (0, 1));
        // Past the idle timeout, an open one goes too.
        b.idle.sweep(Duration::ZERO);
        assert_eq!(b.idle_connections(), 0);
    }

    #[tokio::test]
    async fn refuses_oversized_and_malformed_answers() {
        let big = "HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n";
        let node = Node::start(vec![
            Step::Answer(big),
            Step::Answer("<html>oops</html>\r\n\r\n"),
            Step::AnswerAndClose("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{\"a\""),
        ])
        .await;
        let (client, endpoint) = (client(), Endpoint::new(&node.url).unwrap());
        assert!(matches!(
            post(&client, &endpoint, true).await,
            Err(ExchangeError::TooLarge(1024))
        ));
        assert!(matches!(
            post(&client, &endpoint, true).await,
            Err(ExchangeError::Protocol(_))
        ));
        assert!(matches!(
            post(&client, &endpoint, true).await,
            Err(ExchangeError::Transport(_))
        ));
        // No failed exchange left its connection in the pool.
        assert_eq!(endpoint.idle_connections(), 0);
        assert_eq!(node.accepted(), 3);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let endpoint = Endpoint::new(&url).unwrap();
        assert!(matches!(
            post(&client(), &endpoint, false).await,
            Err(ExchangeError::Connect(ConnectError::Tcp { .. }))
        ));
    }
}
