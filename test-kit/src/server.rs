//! The HTTP side of every mock node: a listener on 127.0.0.1, JSON-RPC
//! single calls and batches handed to the chain's [`MockChain`] one call at
//! a time, ids echoed byte for byte (`RawValue`; notifications get no
//! answer), every call counted per method and logged, faults injected for
//! every request or scripted request by request, and [`MockServer::kill`]
//! closing the listener *and* every open connection (the way a crashed node
//! looks to a pooled client) with [`MockServer::restart`] listening again on
//! the same port.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// The method name counted for bodies that are not JSON-RPC at all.
pub const INVALID_BODY: &str = "<invalid>";

/// How the mock node answers a request: set for every request
/// ([`MockServer::set_fault`]) or scripted request by request
/// ([`MockServer::script`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Answer normally.
    #[default]
    None,
    /// Answer this HTTP status with an HTML page.
    Status(u16),
    /// Never answer (the connection stays open).
    Hang,
    /// Wait until [`MockServer::release`], then answer normally.
    Hold,
    /// Answer HTTP 200 with a body that is not JSON.
    Malformed,
    /// Answer HTTP 200 with the good answer cut in half.
    Truncated,
    /// Send the head and half the body, then break the connection.
    ResetMidBody,
    /// Answer HTTP 200 with a valid answer to another id.
    WrongId,
    /// Answer HTTP 200 with an HTML page (a maintenance page).
    Html,
    /// Answer the first call with this JSON-RPC error.
    RpcError(i64, &'static str),
    /// Good answers, but every numeric id written back as a float (`0` →
    /// `0.0`), the way nodes that read ids into a double do (ganache loses
    /// the precision of big numbers this way).
    LossyIds,
    /// Answer normally after this delay.
    Delay(Duration),
}

/// Why a mock node could not start or restart.
#[derive(Debug, thiserror::Error)]
#[error("mock node cannot listen on {addr}: {source}")]
pub struct MockStartError {
    /// The address that could not be bound.
    pub addr: SocketAddr,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// One JSON-RPC call, as far as a mock needs to read it.
#[derive(Debug, Deserialize)]
pub struct Call<'a> {
    #[serde(borrow)]
    pub id: Option<&'a RawValue>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(borrow, default)]
    pub params: Option<&'a RawValue>,
    /// The id is written back as a float ([`Fault::LossyIds`]).
    #[serde(skip)]
    lossy: bool,
}

impl Call<'_> {
    /// The id's raw JSON as the node writes it back, `null` when absent.
    pub fn id(&self) -> String {
        let raw = self.id.map_or("null", RawValue::get);
        match serde_json::from_str::<f64>(raw) {
            Ok(f) if self.lossy => format!("{f:?}"),
            _ => raw.to_owned(),
        }
    }

    /// A notification (no `id` member) gets no answer.
    pub fn is_notification(&self) -> bool {
        self.id.is_none()
    }

    /// The method, empty when absent.
    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or("")
    }

    /// A result answer to this call.
    pub fn result(&self, result: &str) -> Answer {
        Answer {
            text: format!(
                r#"{{"jsonrpc":"2.0","id":{},"result":{result}}}"#,
                self.id()
            ),
            error: false,
        }
    }

    /// An error answer to this call.
    pub fn error(&self, code: i64, message: &str) -> Answer {
        Answer {
            text: format!(
                r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":{code},"message":{}}}}}"#,
                self.id(),
                serde_json::Value::String(message.to_owned())
            ),
            error: true,
        }
    }
}

/// A mock's answer to one call.
#[derive(Debug)]
pub struct Answer {
    /// The whole JSON-RPC response object.
    pub text: String,
    /// It is an error (some nodes answer a failed single call with HTTP 400).
    pub error: bool,
}

/// What a chain kind's mock answers; the server does the rest.
pub trait MockChain: Send + Sync + 'static {
    /// Answers `call`; counts it with `counts` under the name tests ask for.
    fn answer(&self, call: &Call<'_>, counts: &Counts) -> Answer;

    /// Whether the node serves JSON-RPC at `path` (others get HTTP 404).
    fn serves_path(&self, _path: &str) -> bool {
        true
    }

    /// The HTTP status of a single call's answer.
    fn single_status(&self, _error: bool) -> StatusCode {
        StatusCode::OK
    }
}

/// Calls received, per method (a batch counts each of its calls).
#[derive(Debug, Default)]
pub struct Counts {
    by_method: Mutex<HashMap<String, u64>>,
}

impl Counts {
    /// Counts one call of `method`.
    pub fn count(&self, method: &str) {
        self.count_then(method, || ());
    }

    /// Counts one call of `method` and runs `read` under the same lock, so
    /// a test changing state with [`Counts::changed_at`] knows exactly
    /// which calls saw which state.
    pub fn count_then<T>(&self, method: &str, read: impl FnOnce() -> T) -> T {
        let mut map = self.lock();
        *map.entry(method.to_owned()).or_default() += 1;
        read()
    }

    /// Runs `change` and returns how many calls of `method` were counted
    /// before it, atomically with respect to [`Counts::count_then`].
    pub fn changed_at(&self, method: &str, change: impl FnOnce()) -> u64 {
        let map = self.lock();
        change();
        map.get(method).copied().unwrap_or(0)
    }

    /// Calls of `method` so far.
    pub fn of(&self, method: &str) -> u64 {
        self.lock().get(method).copied().unwrap_or(0)
    }

    /// Calls of every method not in `methods`.
    pub fn except(&self, methods: &[&str]) -> u64 {
        self.lock()
            .iter()
            .filter(|(m, _)| !methods.contains(&m.as_str()))
            .map(|(_, n)| n)
            .sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.by_method
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the handle and the connection tasks share.
#[derive(Debug)]
struct Shared<C> {
    chain: C,
    counts: Counts,
    /// HTTP requests per path.
    paths: Counts,
    total: AtomicU64,
    /// Applies when the script is empty.
    fault: Mutex<Fault>,
    /// Applied to the next requests, one each, in order.
    script: Mutex<VecDeque<Fault>>,
    /// Every call received, in arrival order: `method:id:params`.
    calls: Mutex<Vec<String>>,
    /// Requests waiting in [`Fault::Hold`].
    held: AtomicU64,
    released: Notify,
}

/// A running (or killed) mock node serving chain `C`. Dropping it stops it.
#[derive(Debug)]
pub struct MockServer<C: MockChain> {
    addr: SocketAddr,
    shared: Arc<Shared<C>>,
    /// The accept loop; it owns every connection task, so aborting it
    /// closes them all.
    server: Mutex<Option<JoinHandle<()>>>,
}

impl<C: MockChain> MockServer<C> {
    /// Serves `chain` on `addr` (port 0 allowed).
    pub fn start_on(addr: SocketAddr, chain: C) -> Result<Self, MockStartError> {
        let shared = Arc::new(Shared {
            chain,
            counts: Counts::default(),
            paths: Counts::default(),
            total: AtomicU64::new(0),
            fault: Mutex::new(Fault::None),
            script: Mutex::new(VecDeque::new()),
            calls: Mutex::new(Vec::new()),
            held: AtomicU64::new(0),
            released: Notify::new(),
        });
        let listener = bind(addr)?;
        let addr = listener
            .local_addr()
            .map_err(|source| MockStartError { addr, source })?;
        let server = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            server: Mutex::new(Some(server)),
        })
    }

    /// Serves `chain` on 127.0.0.1 at a free port.
    ///
    /// # Panics
    /// If no port can be bound (the test cannot go on without its node).
    pub fn start(chain: C) -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), chain)
            // Test support: a node that cannot bind fails the test at once.
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The chain's state.
    pub fn chain(&self) -> &C {
        &self.shared.chain
    }

    /// The per-method counters.
    pub fn counts(&self) -> &Counts {
        &self.shared.counts
    }

    /// JSON-RPC calls of `method` received so far (a batch counts each
    /// call).
    pub fn requests(&self, method: &str) -> u64 {
        self.shared.counts.of(method)
    }

    /// JSON-RPC calls of any method *not* in `methods` (bodies that were
    /// not JSON-RPC count as [`INVALID_BODY`]). With the probe methods
    /// excluded, this is "client traffic that reached this node".
    pub fn requests_except(&self, methods: &[&str]) -> u64 {
        self.shared.counts.except(methods)
    }

    /// HTTP requests received at `path` so far.
    pub fn requests_at(&self, path: &str) -> u64 {
        self.shared.paths.of(path)
    }

    /// The bound address (kept across [`MockServer::restart`]).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Injects `fault` into every request from now on ([`Fault::None`]
    /// clears it).
    pub fn set_fault(&self, fault: Fault) {
        *lock(&self.shared.fault) = fault;
    }

    /// The next requests answer like `faults`, one each, in order; then
    /// the fault set with [`MockServer::set_fault`] applies again.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.shared.script).extend(faults);
    }

    /// Holds every answer from now on ([`Fault::Hold`]): requests are read
    /// and counted but not answered, so a probe of this node can neither
    /// pass nor fail (with a probe timeout longer than the test), which
    /// freezes what the prober knows of it.
    pub fn hold(&self) {
        self.set_fault(Fault::Hold);
    }

    /// Answers every held request, and every one after normally.
    pub fn release(&self) {
        self.set_fault(Fault::None);
        self.shared.released.notify_waiters();
    }

    /// Requests held right now.
    pub fn held(&self) -> u64 {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Every call received so far, in arrival order, as
    /// `method:id:params` (`-` for an absent id or params).
    pub fn calls(&self) -> Vec<String> {
        lock(&self.shared.calls).clone()
    }

    /// HTTP requests received so far (whatever their body).
    pub fn total_requests(&self) -> u64 {
        self.shared.total.load(Ordering::SeqCst)
    }

    /// Stops listening and drops every open connection, so clients see
    /// connection refused / reset. Counters and state are kept.
    pub fn kill(&self) {
        let server = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(server) = server {
            // Aborting drops the listener and the JoinSet of connections;
            // dropping a JoinSet aborts its tasks, which closes their sockets.
            server.abort();
        }
    }

    /// Whether the node is listening.
    pub fn is_running(&self) -> bool {
        self.server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Listens again on the same port (after [`MockServer::kill`]).
    /// Retries for a while: the port is briefly unavailable after a kill.
    pub async fn restart(&self) -> Result<(), MockStartError> {
        self.kill();
        let mut last = None;
        for _ in 0..100 {
            match bind(self.addr) {
                Ok(listener) => {
                    let server = tokio::spawn(accept_loop(listener, self.shared.clone()));
                    *self.server.lock().unwrap_or_else(PoisonError::into_inner) = Some(server);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(last.unwrap_or(MockStartError {
            addr: self.addr,
            source: std::io::Error::other("restart gave up"),
        }))
    }
}

impl<C: MockChain> Drop for MockServer<C> {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Binds with SO_REUSEADDR so a restart can take the same port again at once.
fn bind(addr: SocketAddr) -> Result<TcpListener, MockStartError> {
    let err = |source| MockStartError { addr, source };
    let socket = TcpSocket::new_v4().map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(1024).map_err(err)
}

async fn accept_loop<C: MockChain>(listener: TcpListener, shared: Arc<Shared<C>>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(req, shared.clone()));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            // Reap finished connections so the set does not grow forever.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle<C: MockChain>(
    req: Request<Incoming>,
    shared: Arc<Shared<C>>,
) -> Result<Response<Body>, Infallible> {
    shared.total.fetch_add(1, Ordering::SeqCst);
    shared.paths.count(req.uri().path());
    if !shared.chain.serves_path(req.uri().path()) {
        return Ok(plain(StatusCode::NOT_FOUND, "no JSON-RPC here".into()));
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(plain(StatusCode::BAD_REQUEST, "unreadable body".into())),
    };
    let fault = lock(&shared.script)
        .pop_front()
        .unwrap_or_else(|| *lock(&shared.fault));
    let answer = answer(&body, &shared, fault == Fault::LossyIds);
    let good = |answer: Option<(StatusCode, Vec<u8>)>| match answer {
        Some((status, body)) => json(status, body),
        None => plain(StatusCode::BAD_REQUEST, "not JSON-RPC".into()),
    };
    Ok(match fault {
        Fault::None | Fault::LossyIds => good(answer),
        Fault::Delay(d) => {
            tokio::time::sleep(d).await;
            good(answer)
        }
        Fault::Status(status) => plain(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "<html><body>mock fault</body></html>".into(),
        ),
        Fault::Html => plain(
            StatusCode::OK,
            "<html><body>maintenance</body></html>".into(),
        ),
        Fault::Hang => std::future::pending().await,
        Fault::Hold => {
            // Counted while held, and no longer once answered or dropped
            // (the node's client went away).
            struct Held<'a>(&'a AtomicU64);
            impl Drop for Held<'_> {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::SeqCst);
                }
            }
            let released = shared.released.notified();
            shared.held.fetch_add(1, Ordering::SeqCst);
            let _held = Held(&shared.held);
            released.await;
            good(answer)
        }
        Fault::Malformed => json(StatusCode::OK, b"{\"jsonrpc\": oops".to_vec()),
        Fault::Truncated => {
            let (_, body) = answer.unwrap_or_default();
            json(StatusCode::OK, body[..body.len() / 2].to_vec())
        }
        Fault::WrongId => json(
            StatusCode::OK,
            br#"{"jsonrpc":"2.0","id":"someone-else","result":"x"}"#.to_vec(),
        ),
        Fault::RpcError(code, message) => {
            let call = serde_json::from_slice::<Call<'_>>(&body).ok();
            let id = call.as_ref().map_or_else(|| "null".to_owned(), Call::id);
            json(
                StatusCode::OK,
                format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{}}}}}"#,
                    serde_json::Value::String(message.to_owned())
                )
                .into_bytes(),
            )
        }
        Fault::ResetMidBody => {
            let (_, body) = answer.unwrap_or_default();
            let half = Bytes::from(body[..body.len() / 2].to_vec());
            let frames: Vec<Result<Frame<Bytes>, std::io::Error>> =
                vec![Ok(Frame::data(half)), Err(std::io::Error::other("reset"))];
            let mut r = Response::new(StreamBody::new(futures_util::stream::iter(frames)).boxed());
            r.headers_mut()
                .insert(http::header::CONTENT_LENGTH, body.len().into());
            r
        }
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Logs every call of `calls` as `method:id:params`.
fn log_calls<C>(shared: &Shared<C>, calls: &[Call<'_>]) {
    let shown = |v: Option<&RawValue>| v.map_or_else(|| "-".to_owned(), |v| v.get().to_owned());
    let mut log = lock(&shared.calls);
    for c in calls {
        log.push(format!(
            "{}:{}:{}",
            c.method.as_deref().unwrap_or("?"),
            shown(c.id),
            shown(c.params)
        ));
    }
}

/// Counts the calls in `body` and builds the answer; `None` if the body is
/// not a JSON-RPC call or batch. Notifications get no answer (a batch of
/// only notifications, or a single one: an empty body).
fn answer<C: MockChain>(
    body: &[u8],
    shared: &Shared<C>,
    lossy: bool,
) -> Option<(StatusCode, Vec<u8>)> {
    let trimmed = body.trim_ascii_start();
    if trimmed.first() == Some(&b'[') {
        let Ok(mut calls) = serde_json::from_slice::<Vec<Call<'_>>>(body) else {
            shared.counts.count(INVALID_BODY);
            return None;
        };
        log_calls(shared, &calls);
        let answers: Vec<String> = calls
            .iter_mut()
            .filter_map(|c| {
                c.lossy = lossy;
                let answer = shared.chain.answer(c, &shared.counts);
                (!c.is_notification()).then_some(answer.text)
            })
            .collect();
        Some((
            StatusCode::OK,
            format!("[{}]", answers.join(",")).into_bytes(),
        ))
    } else {
        let Ok(mut call) = serde_json::from_slice::<Call<'_>>(body) else {
            shared.counts.count(INVALID_BODY);
            return None;
        };
        log_calls(shared, std::slice::from_ref(&call));
        call.lossy = lossy;
        let answer = shared.chain.answer(&call, &shared.counts);
        if call.is_notification() {
            return Some((StatusCode::OK, Vec::new()));
        }
        Some((
            shared.chain.single_status(answer.error),
            answer.text.into_bytes(),
        ))
    }
}

/// A mock's answer body: whole, or breaking off.
type Body = BoxBody<Bytes, std::io::Error>;

fn full(body: Bytes) -> Body {
    Full::new(body).map_err(|never| match never {}).boxed()
}

fn json(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn plain(status: StatusCode, text: String) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from(text)));
    *resp.status_mut() = status;
    resp
}
