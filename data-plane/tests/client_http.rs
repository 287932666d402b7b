//! The client listener's HTTP, byte for byte: a real data plane and a mock
//! node, driven over raw TCP so the tests control exactly what arrives and
//! when. Covers the HTTP/1.1 fast path (pipelining, split reads, HTTP/1.0
//! keep-alive, refusals before and after the body, a body cut short) and
//! the hand-over to hyper (chunked bodies mid-connection, HTTP/2 with prior
//! knowledge, malformed heads), and graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use meridian_common::proto;
use meridian_data_plane::app::DataPlane;
use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const LIMIT: u64 = 1024;

async fn setup() -> (DataPlane, tempfile::TempDir, Node) {
    setup_with(proto::NetworkPolicy {
        max_body_bytes: LIMIT,
        ..Default::default()
    })
    .await
}

async fn setup_with(policy: proto::NetworkPolicy) -> (DataPlane, tempfile::TempDir, Node) {
    let node = Node::named("a").await;
    let (dp, dir) = data_plane(
        snapshot(vec![upstream("a", &node.url())], None, policy),
        |_| {},
    )
    .await;
    (dp, dir, node)
}

/// A call whose id is also its only param, so the node (which sees
/// Meridian's ids) can tell the calls apart.
fn call(id: u32) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"eth_blockNumber","params":[{id}]}}"#)
}

fn post(path: &str, body: &str, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// One HTTP/1 client connection, spoken by hand.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct RawReply {
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    version: u8,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

impl Raw {
    async fn connect(dp: &DataPlane) -> Raw {
        Raw {
            stream: TcpStream::connect(dp.listen_addr()).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    async fn fill(&mut self) -> usize {
        self.try_fill().await.unwrap_or(0)
    }

    async fn try_fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
            .await
            .expect("the data plane answers within 10 s")?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// The next response (`content-length` framed, as Meridian's are).
    async fn response(&mut self) -> RawReply {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut head = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(len) = head.parse(&self.buf).unwrap() {
                let headers: Vec<(String, String)> = head
                    .headers
                    .iter()
                    .map(|h| {
                        let value = String::from_utf8_lossy(h.value).into_owned();
                        (h.name.to_ascii_lowercase(), value)
                    })
                    .collect();
                let status = head.code.unwrap();
                let version = head.version.unwrap();
                let body_len: usize = match headers.iter().find(|(n, _)| n == "content-length") {
                    Some((_, v)) => v.parse().unwrap(),
                    None if status == 204 => 0,
                    None => panic!("a {status} without content-length"),
                };
                while self.buf.len() < len + body_len {
                    assert!(self.fill().await > 0, "closed mid-body");
                }
                let body = String::from_utf8(self.buf[len..len + body_len].to_vec()).unwrap();
                self.buf.drain(..len + body_len);
                return RawReply {
                    version,
                    status,
                    headers,
                    body,
                };
            }
            assert!(
                self.fill().await > 0,
                "closed before a response: {:?}",
                self.buf
            );
        }
    }

    /// Waits until the data plane has read every byte sent on this
    /// connection: the kernel has delivered them (nothing unacknowledged
    /// on our end) and nothing is left unread on the data plane's end, as
    /// `/proc/net/tcp` shows the two sockets' queues.
    async fn wait_read_by_data_plane(&self) {
        let client = self.stream.local_addr().unwrap();
        let server = self.stream.peer_addr().unwrap();
        eventually("the data plane to read what was sent", || async {
            let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
            let queue = |local, remote| tcp_queues(&table, local, remote);
            queue(client, server).is_some_and(|(tx, _)| tx == 0)
                && queue(server, client).is_some_and(|(_, rx)| rx == 0)
        })
        .await;
    }

    /// The data plane closed the connection cleanly (a FIN, not a reset)
    /// and sent nothing more.
    async fn closed(&mut self) -> bool {
        matches!(self.try_fill().await, Ok(0)) && self.buf.is_empty()
    }
}

/// The (send, receive) queue lengths of the IPv4 socket `local` ↔ `remote`
/// in the text of `/proc/net/tcp`.
fn tcp_queues(table: &str, local: SocketAddr, remote: SocketAddr) -> Option<(u64, u64)> {
    // Addresses are written as the IPv4 address's bytes in host order
    // (little-endian here) and the port, both in hex: 0100007F:1F90.
    let hex = |a: SocketAddr| match a.ip() {
        std::net::IpAddr::V4(ip) => Some(format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(ip.octets()),
            a.port()
        )),
        std::net::IpAddr::V6(_) => None,
    };
    let (local, remote) = (hex(local)?, hex(remote)?);
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1)? != &local || fields.get(2)? != &remote {
            return None;
        }
        let (tx, rx) = fields.get(4)?.split_once(':')?;
        Some((
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    })
}

fn assert_answers(reply: &RawReply, id: u32) {
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.json(),
        json!({"jsonrpc":"2.0","id":id,"result":"a"}),
        "{reply:?}"
    );
    assert_eq!(reply.header("x-handled-by"), Some("a"));
    assert_eq!(reply.header("x-meridian-tries"), Some("1"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(reply.header("date").is_some());
}

/// The node got exactly these `eth_blockNumber` calls, in this order.
fn assert_node_saw(node: &Node, ids: &[u32]) {
    let want: Vec<String> = ids
        .iter()
        .map(|id| format!("eth_blockNumber:0:[{id}]"))
        .collect();
    assert_eq!(node.calls(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_and_split_requests_are_answered_in_order_on_one_connection() {
    let (dp, _dir, node) = setup().await;
    let mut c = Raw::connect(&dp).await;
    // Two whole requests and the first half of a third in one write, the
    // rest a moment later: answers come back in request order.
    let third = post("/eth", &call(3), "X-Request-Id: third\r\n");
    let (third_a, third_b) = third.split_at(third.len() - 20);
    let first = format!(
        "{}{}{third_a}",
        post("/eth", &call(1), ""),
        post("/eth/", &call(2), "")
    );
    c.send(first.as_bytes()).await;
    assert_answers(&c.response().await, 1);
    assert_answers(&c.response().await, 2);
    c.send(third_b.as_bytes()).await;
    let reply = c.response().await;
    assert_answers(&reply, 3);
    assert_eq!(reply.header("x-request-id"), Some("third"));
    assert!(reply.header("connection").is_none());
    // The head split inside a header line, and the body in pieces: each
    // piece its own segment (no Nagle), with a pause for it to be read.
    c.stream.set_nodelay(true).unwrap();
    let fourth = post("/eth", &call(4), "");
    for piece in fourth.as_bytes().chunks(7) {
        c.send(piece).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_answers(&c.response().await, 4);
    assert_node_saw(&node, &[1, 2, 3, 4]);
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_closes_unless_asked_to_keep_alive() {
    let (dp, _dir, _node) = setup().await;
    let mut c = Raw::connect(&dp).await;
    let body = call(1);
    let keep = format!(
        "POST /eth HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    c.send(keep.as_bytes()).await;
    let reply = c.response().await;
    assert_answers(&reply, 1);
    assert_eq!(
        reply.version, 0,
        "an HTTP/1.0 request gets an HTTP/1.0 answer"
    );
    assert_eq!(reply.header("connection"), Some("keep-alive"));
    let close = format!(
        "POST /eth HTTP/1.0\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    c.send(close.as_bytes()).await;
    let reply = c.response().await;
    assert_answers(&reply, 1);
    assert_eq!(reply.header("connection"), Some("close"));
    assert!(c.closed().await);

    // HTTP/1.1 with `Connection: close` too.
    let mut c = Raw::connect(&dp).await;
    c.send(post("/eth", &call(2), "Connection: close\r\n").as_bytes())
        .await;
    assert_eq!(c.response().await.header("connection"), Some("close"));
    assert!(c.closed().await);
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_keep_the_connection_only_when_the_body_is_consumed() {
    let (dp, _dir, node) = setup().await;
    let mut c = Raw::connect(&dp).await;
    // Unknown network: refused before the body is read, but the body is
    // all here, so it is skipped and the connection goes on.
    c.send(post("/nope", &call(1), "").as_bytes()).await;
    let reply = c.response().await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.header("x-rejected-by"), Some("network"));
    assert!(reply.header("connection").is_none());
    // Invalid JSON: the body was read; the connection goes on.
    c.send(post("/eth", "{nope", "").as_bytes()).await;
    let reply = c.response().await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.header("x-rejected-by"), Some("json"));
    c.send(post("/eth", &call(2), "").as_bytes()).await;
    assert_answers(&c.response().await, 2);
    // A refused request and a good one behind it in the same write.
    let both = format!(
        "{}{}",
        post("/nope", &call(1), ""),
        post("/eth", &call(3), "")
    );
    c.send(both.as_bytes()).await;
    assert_eq!(c.response().await.status, 404);
    assert_answers(&c.response().await, 3);
    // Refused while its body is still on the way: the connection closes.
    let refused = post("/nope", &call(1), "");
    let (sent, rest) = refused.split_at(refused.len() - 5);
    c.send(sent.as_bytes()).await;
    let reply = c.response().await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.header("connection"), Some("close"));
    c.send(rest.as_bytes()).await;
    assert!(c.closed().await);

    // A declared length over the limit with its 512 KiB body sent at once:
    // refused unread, the answer arrives whole, and the connection ends
    // with a clean close, not a reset that would destroy the answer.
    let mut c = Raw::connect(&dp).await;
    let big = "x".repeat(512 * 1024);
    let head = format!(
        "POST /eth HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        big.len()
    );
    c.send(format!("{head}{big}").as_bytes()).await;
    let reply = c.response().await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.header("x-rejected-by"), Some("size"));
    assert_eq!(reply.header("connection"), Some("close"));
    assert!(c.closed().await);

    // A body that ends before its Content-Length.
    let mut c = Raw::connect(&dp).await;
    c.send(b"POST /eth HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\"")
        .await;
    c.stream.shutdown().await.unwrap();
    let reply = c.response().await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.header("x-rejected-by"), Some("body"));
    assert_eq!(reply.header("connection"), Some("close"));
    assert!(c.closed().await);

    // No refusal reached the node.
    assert_node_saw(&node, &[2, 3]);
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_takes_over_mid_connection_for_what_the_fast_path_does_not_serve() {
    let (dp, _dir, node) = setup().await;
    let mut c = Raw::connect(&dp).await;
    c.send(post("/eth", &call(1), "").as_bytes()).await;
    assert_answers(&c.response().await, 1);
    // A chunked body hands the connection to hyper, with the bytes already
    // read: here the chunked request and a plain one behind it.
    let body = call(2);
    let chunked = format!(
        "POST /eth HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        10,
        &body[..10],
        body.len() - 10,
        &body[10..]
    );
    c.send(format!("{chunked}{}", post("/eth", &call(3), "")).as_bytes())
        .await;
    assert_answers(&c.response().await, 2);
    assert_answers(&c.response().await, 3);
    // hyper's answers for the rest of HTTP: another method, a bad head.
    c.send(b"GET /eth HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let reply = c.response().await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("POST"));
    let mut bad = Raw::connect(&dp).await;
    bad.send(b"POST /eth HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n")
        .await;
    assert_eq!(bad.response().await.status, 400);
    assert_node_saw(&node, &[1, 2, 3]);
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_prior_knowledge_is_served() {
    let (dp, _dir, _node) = setup().await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    for id in 1..=3 {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{}/eth", dp.listen_addr()))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(call(id))))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-handled-by"], "a");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, json!({"jsonrpc":"2.0","id":id,"result":"a"}));
    }
    dp.shutdown().await;
}

/// A valid call padded with whitespace (still valid JSON) to over `LIMIT`:
/// forwarded, it would reach the node, so "nothing forwarded" can fail.
fn padded_call(id: u32) -> String {
    let body = format!("{}{}", call(id), " ".repeat(LIMIT as usize + 200));
    assert!(body.len() as u64 > LIMIT);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_refused_whatever_their_framing() {
    let (dp, _dir, node) = setup().await;

    // HTTP/1.1 chunked (served by hyper): every chunk under the limit,
    // together over it.
    let body = padded_call(1);
    let mut chunked =
        String::from("POST /eth HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    for piece in body.as_bytes().chunks(300) {
        let piece = std::str::from_utf8(piece).unwrap();
        chunked.push_str(&format!("{:x}\r\n{piece}\r\n", piece.len()));
    }
    chunked.push_str("0\r\n\r\n");
    let mut c = Raw::connect(&dp).await;
    c.send(chunked.as_bytes()).await;
    let reply = c.response().await;
    assert_eq!(reply.status, 413, "{reply:?}");
    assert_eq!(reply.header("x-rejected-by"), Some("size"));
    assert_eq!(reply.json()["error"]["code"], -32005, "{reply:?}");

    // HTTP/2 with prior knowledge: a declared length, and a body streamed
    // in frames with no length at all.
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>>(
    );
    let declared = Full::new(Bytes::from(padded_call(2))).boxed();
    let frames = padded_call(3)
        .into_bytes()
        .chunks(300)
        .map(|piece| Ok(hyper::body::Frame::data(Bytes::copy_from_slice(piece))))
        .collect::<Vec<_>>();
    let streamed = http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed();
    for (what, body) in [("declared", declared), ("streamed", streamed)] {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{}/eth", dp.listen_addr()))
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{what}");
        assert_eq!(response.headers()["x-rejected-by"], "size", "{what}");
    }

    // The node saw none of them, then sees a call of the right size.
    let mut c = Raw::connect(&dp).await;
    c.send(post("/eth", &call(4), "").as_bytes()).await;
    assert_answers(&c.response().await, 4);
    assert_node_saw(&node, &[4]);
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_connections_and_finishes_requests_in_flight() {
    let (dp, _dir, node) = setup().await;
    // A connection in the middle of a head has no request taken yet, but
    // its bytes are in the data plane's buffer (waited for: a data plane
    // that had not read them would see an idle connection).
    let mut partial = Raw::connect(&dp).await;
    partial.send(b"POST /eth HTTP/1.1\r\nHost: t\r\n").await;
    partial.wait_read_by_data_plane().await;
    let mut idle = Raw::connect(&dp).await;
    idle.send(post("/eth", &call(1), "").as_bytes()).await;
    assert_answers(&idle.response().await, 1);
    // One request held at the node while shutdown starts.
    node.set_fault(Fault::Hold);
    let mut busy = Raw::connect(&dp).await;
    busy.send(post("/eth", &call(2), "").as_bytes()).await;
    eventually("the request to reach the node", || async {
        node.held() == 1
    })
    .await;
    let mut shutdown = tokio::spawn(dp.shutdown());
    assert!(
        partial.closed().await,
        "a connection inside a head is closed at shutdown"
    );
    assert!(
        idle.closed().await,
        "an idle connection is closed at shutdown"
    );
    // A bound for a negative: a drain that did not wait would have
    // finished long before it.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut shutdown)
            .await
            .is_err(),
        "shutdown waits for the request in flight"
    );
    node.release();
    let reply = busy.response().await;
    assert_answers(&reply, 2);
    assert_eq!(reply.header("connection"), Some("close"));
    assert!(busy.closed().await);
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("shutdown finishes once the last request is answered")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_notifications_is_a_204_without_content_length() {
    let (dp, _dir, node) = setup().await;
    let mut c = Raw::connect(&dp).await;
    let batch = r#"[{"jsonrpc":"2.0","method":"eth_blockNumber"},{"jsonrpc":"2.0","method":"eth_chainId"}]"#;
    c.send(post("/eth", batch, "").as_bytes()).await;
    let reply = c.response().await;
    assert_eq!(reply.status, 204, "{reply:?}");
    assert_eq!(reply.header("content-length"), None);
    assert_eq!(reply.body, "");
    // The connection goes on.
    c.send(post("/eth", &call(1), "").as_bytes()).await;
    assert_answers(&c.response().await, 1);
    assert_eq!(node.total_requests(), 2);
    dp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_cancels_its_request_upstream() {
    // A deadline far past the wait below: only the hang-up can end the try.
    let (dp, _dir, node) = setup_with(proto::NetworkPolicy {
        request_timeout_ms: 600_000,
        ..Default::default()
    })
    .await;
    node.set_fault(Fault::Hold);
    let mut c = Raw::connect(&dp).await;
    c.send(post("/eth", &call(1), "").as_bytes()).await;
    eventually("the request to reach the node", || async {
        node.held() == 1
    })
    .await;
    drop(c);
    // The data plane drops its try, so the node sees its client go too.
    eventually("the node to see the request abandoned", || async {
        node.held() == 0
    })
    .await;
    node.release();
    dp.shutdown().await;
}
