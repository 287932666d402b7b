//! One client connection: requests on the HTTP/1.1 fast path until one
//! needs more of HTTP than JSON-RPC clients use, then hyper for the rest.
//!
//! The fast path reads into one buffer per connection, parses the head in
//! place ([`super::head`]), takes the body as a slice of that buffer, runs
//! the request through [`pipeline::handle`] in this task (no channel, no
//! extra task), and writes head and body with one `write`. Pipelined
//! requests are served in order from the same buffer.

use std::io;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf as _, Bytes, BytesMut};
use http::{Method, StatusCode};
use meridian_common::jsonrpc;
use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _, Interest};
use tokio::net::TcpStream;
use tokio::net::tcp::ReadHalf;
use tokio::sync::watch;

use super::encode;
use super::fallback::Fallback;
use super::head::{self, FastHead, Head};
use super::idle::ConnState;
use crate::proxy::limits::{self, RequestBody};
use crate::proxy::pipeline::{self, ClientRequest};
use crate::proxy::reply::ErrorReply;
use crate::state::Shared;

/// Read buffer grown by this much when it runs out of room.
const READ_CHUNK: usize = 4096;
/// A body is read in steps of at most this much, so a declared length
/// reserves memory only as its bytes arrive.
const BODY_CHUNK: usize = 64 * 1024;
/// A read buffer grown past this (by a large body) is given back once the
/// connection is idle, so a keep-alive connection does not hold it.
const KEEP_BUFFER: usize = 64 * 1024;
/// After a `connection: close` answer, what the client still sends is read
/// and dropped for this long (at most [`LINGER_BYTES`]) before the socket
/// closes, so an unread body does not turn the close into a reset that
/// destroys the answer in flight.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1024 * 1024;

static POST: Method = Method::POST;

/// The socket and what has been read from it.
struct Io {
    stream: TcpStream,
    buf: BytesMut,
    /// Body bytes of the current request not yet taken from the buffer.
    body_left: u64,
}

/// Reads whatever arrives into `buf`; 0 is end of stream. Through
/// `AsyncRead`, which marks the socket drained after a short read, so the
/// next wait goes straight to the poller instead of a `read` that would
/// block. The buffer is first allocated once bytes are there: a connection
/// that never sends holds none.
async fn read_into<R>(stream: &mut R, buf: &mut BytesMut, chunk: usize) -> io::Result<usize>
where
    R: AsyncRead + AsRef<TcpStream> + Unpin,
{
    if buf.capacity() == 0 {
        stream.as_ref().readable().await?;
    }
    if buf.capacity() == buf.len() {
        buf.reserve(chunk);
    }
    stream.read_buf(buf).await
}

/// Completes when the client closes or resets the connection while its
/// request is served. Stays pending once the client has sent more bytes
/// (a pipelined request): only reading them could look past them. Waits
/// in the socket's reader slot, not its waiter list: the body is read in
/// this same task, so whichever registers last leaves the same waker.
async fn hang_up(stream: &TcpStream) {
    let mut byte = [MaybeUninit::<u8>::uninit(); 1];
    loop {
        if std::future::poll_fn(|cx| stream.poll_read_ready(cx))
            .await
            .is_err()
        {
            return;
        }
        let peeked = stream.try_io(Interest::READABLE, || SockRef::from(stream).peek(&mut byte));
        match peeked {
            Ok(0) => return,
            Ok(_) => return std::future::pending().await,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// Serves `stream` until the client closes it, an answer closes it, or
/// shutdown finds it between requests.
pub async fn run(
    stream: TcpStream,
    shared: Arc<Shared>,
    fallback: Arc<Fallback>,
    shutdown: watch::Receiver<bool>,
    state: &ConnState,
) {
    let mut io = Io {
        stream,
        buf: BytesMut::new(),
        body_left: 0,
    };
    let mut out = Vec::new();
    loop {
        let head = match next_head(&mut io, state).await {
            Next::Fast(head) => head,
            Next::Handoff => {
                // hyper watches shutdown by itself (once per connection).
                return fallback.serve(io.stream, io.buf.freeze(), shutdown).await;
            }
            Next::Close => return,
        };
        let head_bytes = io.buf.split_to(head.len);
        io.body_left = head.content_length;
        // httparse hands out the target as `&str`, so this never fails.
        let path = head_bytes
            .get(head.path.clone())
            .and_then(|p| std::str::from_utf8(p).ok())
            .unwrap_or_default();
        let client_id = head.request_id.clone().and_then(|r| head_bytes.get(r));
        let host = head
            .host
            .clone()
            .and_then(|r| head_bytes.get(r))
            .and_then(|h| std::str::from_utf8(h).ok());
        // Borrowed halves: the body reads through one while the hang-up
        // probe watches the socket through the other.
        let (reader, writer) = io.stream.split();
        let request = ClientRequest {
            method: &POST,
            path,
            network: fallback.bound(),
            host,
            request_id: shared.request_ids.resolve_bytes(client_id),
            priority: head.priority,
            body: FastBody {
                reader,
                buf: &mut io.buf,
                left: &mut io.body_left,
            },
        };
        // Biased: the body is read (and the end of a cut-short body seen)
        // by the request before the hang-up probe looks at the socket.
        let response = tokio::select! {
            biased;
            response = pipeline::handle(&shared, request) => response,
            // The client is gone: dropping the request cancels its
            // upstream tries and gives back its concurrency slot.
            () = hang_up(writer.as_ref()) => return,
        };
        drop(head_bytes);

        let mut keep_alive = head.keep_alive && !response.close;
        if io.body_left > 0 {
            // Refused before its body was read: skip the body when it is
            // all here, or close (the rest is still on the wire).
            match usize::try_from(io.body_left) {
                Ok(n) if n <= io.buf.len() => io.buf.advance(n),
                _ => keep_alive = false,
            }
            io.body_left = 0;
        }
        if state.stopping() {
            keep_alive = false;
        }
        out.clear();
        let body_copied = encode::response(&mut out, &response, keep_alive, head.http10);
        let written = if body_copied {
            io.stream.write_all(&out).await
        } else {
            write_both(&mut io.stream, &out, &response.body).await
        };
        if written.is_err() {
            return;
        }
        if !keep_alive {
            linger_close(io.stream).await;
            return;
        }
        release_if_large(&mut io.buf);
    }
}

/// What comes next on a connection.
enum Next {
    Fast(FastHead),
    Handoff,
    /// The client closed, the read failed, or shutdown came first.
    Close,
}

/// Reads until the buffer starts with a whole head (or one for hyper).
/// Waiting for it (between requests, or inside a head with no request
/// taken yet) is the only moment shutdown closes the connection: it is
/// marked idle meanwhile ([`super::idle`]).
async fn next_head(io: &mut Io, state: &ConnState) -> Next {
    loop {
        if !io.buf.is_empty() {
            match head::parse(&io.buf) {
                // Shutdown may have chosen this connection while the head
                // came in: then it is aborted and the request never starts.
                Head::Fast(head) if state.busy() => return Next::Fast(head),
                Head::Handoff if state.busy() => return Next::Handoff,
                Head::Fast(_) | Head::Handoff => return Next::Close,
                Head::Partial => {}
            }
        }
        if !state.idle() {
            return Next::Close;
        }
        let (mut reader, _) = io.stream.split();
        let read = read_into(&mut reader, &mut io.buf, READ_CHUNK).await;
        if !matches!(read, Ok(n) if n > 0) {
            return Next::Close;
        }
    }
}

/// Gives back an idle connection's buffer once a large body grew it, so a
/// keep-alive connection does not hold that memory.
fn release_if_large(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > KEEP_BUFFER {
        *buf = BytesMut::new();
    }
}

/// The fast path's request body: the next `Content-Length` bytes of the
/// connection's buffer.
struct FastBody<'c> {
    reader: ReadHalf<'c>,
    buf: &'c mut BytesMut,
    /// The connection's count of body bytes not yet taken.
    left: &'c mut u64,
}

impl RequestBody for FastBody<'_> {
    async fn read(mut self, max: u64) -> Result<Bytes, ErrorReply> {
        limits::check_declared(*self.left, max)?;
        let len = usize::try_from(*self.left).map_err(|_| ended_early())?;
        while self.buf.len() < len {
            let step = (len - self.buf.len()).min(BODY_CHUNK);
            match read_into(&mut self.reader, self.buf, step).await {
                Ok(0) | Err(_) => return Err(ended_early()),
                Ok(_) => {}
            }
        }
        *self.left = 0;
        Ok(self.buf.split_to(len).freeze())
    }
}

fn ended_early() -> ErrorReply {
    ErrorReply::rejected(
        StatusCode::BAD_REQUEST,
        jsonrpc::INVALID_REQUEST,
        "body",
        "the request body ended before its Content-Length",
    )
    .body_unread()
}

/// Writes `head` then `body` (one `writev` when the socket takes both).
async fn write_both(stream: &mut TcpStream, head: &[u8], body: &[u8]) -> io::Result<()> {
    let (mut head, mut body) = (head, body);
    while !head.is_empty() {
        let n = stream
            .write_vectored(&[io::IoSlice::new(head), io::IoSlice::new(body)])
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = head.get(from_head..).unwrap_or_default();
        body = body.get(n - from_head..).unwrap_or_default();
    }
    stream.write_all(body).await
}

/// Half-closes, then reads and drops what the client still sends for a
/// moment, then closes.
async fn linger_close(mut stream: TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        // On the heap: a buffer here would sit in every connection's future.
        let mut scratch = vec![0u8; 4096];
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => dropped += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_large_idle_buffer_is_given_back() {
        let mut small = BytesMut::with_capacity(READ_CHUNK);
        release_if_large(&mut small);
        assert!(small.capacity() >= READ_CHUNK, "the usual buffer is kept");

        let mut busy = BytesMut::with_capacity(KEEP_BUFFER * 2);
        busy.extend_from_slice(b"POST");
        release_if_large(&mut busy);
        assert!(
            busy.capacity() > KEEP_BUFFER,
            "a buffer holding bytes is kept"
        );

        let mut large = BytesMut::with_capacity(KEEP_BUFFER * 2);
        release_if_large(&mut large);
        assert_eq!(large.capacity(), 0);
    }
}
