//! The benchmark backend: a minimal, fast mock EVM node.
//!
//! Every variant (direct, nginx, Meridian) sends its load to this same
//! backend, so whatever it costs is the same in every column. It is built to
//! cost as little as possible: one thread, HTTP/1.1 keep-alive, fixed answers,
//! and no JSON parsing — the method is found by a byte search and the request
//! id is copied byte for byte, so the proxy in front sees a real JSON-RPC
//! exchange. It runs as its own process (`meridian-bench backend --port N`)
//! so it can be pinned with `taskset` next to the proxy under test.
//!
//! Answered: `eth_blockNumber`, `eth_getBalance`, `eth_chainId` (so
//! Meridian's control plane probes it as healthy on chain id 1) and
//! `net_version`; anything else gets JSON-RPC -32601.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The head height the backend reports (`eth_blockNumber`).
pub const HEAD_HEIGHT: &str = "0x1234567";
/// The balance of every account (`eth_getBalance`): 1 ether in wei.
pub const BALANCE: &str = "0xde0b6b3a7640000";
/// The chain id reported (`eth_chainId`): Ethereum mainnet.
pub const CHAIN_ID: &str = "0x1";

/// The line the backend prints on stdout once it listens; the harness reads
/// the bound address from it (the port may be 0).
pub const READY_PREFIX: &str = "meridian-bench backend listening on ";

/// Why the backend could not run.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The runtime could not be built.
    #[error("cannot build the backend's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The port could not be bound.
    #[error("backend cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Runs the backend on `127.0.0.1:port` on a current-thread runtime until the
/// process is killed. Prints [`READY_PREFIX`] and the bound address once
/// listening.
pub fn run(port: u16) -> Result<(), BackendError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BackendError::Runtime)?;
    runtime.block_on(async move {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| BackendError::Listen { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| BackendError::Listen { addr, source })?;
        println!("{READY_PREFIX}{local}");
        serve(listener).await;
        Ok(())
    })
}

/// Serves the backend on `listener` forever (until the task is dropped).
pub async fn serve(listener: TcpListener) {
    let mut builder = http1::Builder::new();
    builder.keep_alive(true);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and friends: wait a little instead of spinning.
                eprintln!("backend accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = builder.serve_connection(TokioIo::new(stream), service_fn(handle));
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let answer = answer(&body);
    let mut resp = Response::new(Full::new(Bytes::from(answer)));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// The JSON-RPC answer to one request body: a fixed result for the methods
/// above, -32601 for others, with the request's id copied verbatim.
pub fn answer(body: &[u8]) -> Vec<u8> {
    let id = request_id(body);
    let quoted = |value: &str| format!(r#""{value}""#);
    let result = if contains(body, b"\"eth_blockNumber\"") {
        Some(quoted(HEAD_HEIGHT))
    } else if contains(body, b"\"eth_getBalance\"") {
        Some(quoted(BALANCE))
    } else if contains(body, b"\"eth_chainId\"") {
        Some(quoted(CHAIN_ID))
    } else if contains(body, b"\"net_version\"") {
        Some(quoted("1"))
    } else if contains(body, b"\"web3_clientVersion\"") {
        Some(quoted("meridian-bench/1"))
    } else if contains(body, b"\"eth_getBlockByNumber\"") {
        block_param(body).map(block)
    } else {
        None
    };
    let mut out = Vec::with_capacity(64 + id.len() + result.as_ref().map_or(0, String::len));
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(id);
    match result {
        Some(value) => {
            out.extend_from_slice(br#","result":"#);
            out.extend_from_slice(value.as_bytes());
            out.push(b'}');
        }
        None => out.extend_from_slice(br#","error":{"code":-32601,"message":"method not found"}}"#),
    }
    out
}

/// Blocks below the head taken as final: the backend answers the
/// `finalized` tag with this much less than the head, so the control plane
/// learns a finalized height on its first probe.
pub const FINALITY_DEPTH: u64 = 64;

/// The head as a number.
pub fn head_height() -> u64 {
    u64::from_str_radix(HEAD_HEIGHT.trim_start_matches("0x"), 16).unwrap_or(0)
}

/// The block the first param of `eth_getBlockByNumber` names: a hex
/// number, `latest`, or `finalized` / `safe`; `None` for anything else.
fn block_param(body: &[u8]) -> Option<u64> {
    let params = find(body, b"\"params\"")?;
    let rest = &body[params + 8..];
    let open = rest.iter().position(|&b| b == b'"')? + 1;
    let len = rest[open..].iter().position(|&b| b == b'"')?;
    let tag = std::str::from_utf8(&rest[open..open + len]).ok()?;
    match tag {
        "latest" => Some(head_height()),
        "finalized" | "safe" => Some(head_height() - FINALITY_DEPTH),
        hex => u64::from_str_radix(hex.strip_prefix("0x")?, 16)
            .ok()
            .filter(|n| *n <= head_height()),
    }
}

/// Block `n` without its transactions, about 900 bytes as a node answers
/// it: number, hash (derived from the number), parent, bloom, gas.
fn block(n: u64) -> String {
    format!(
        r#"{{"number":"{n:#x}","hash":"0x{n:064x}","parentHash":"0x{parent:064x}","miner":"0x{zero:040x}","stateRoot":"0x{state:064x}","logsBloom":"0x{zero:0512x}","gasLimit":"0x1c9c380","gasUsed":"0x5208","timestamp":"{ts:#x}","baseFeePerGas":"0x7","transactions":[],"uncles":[]}}"#,
        parent = n.saturating_sub(1),
        zero = 0,
        state = n.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        ts = 1_700_000_000 + n * 12,
    )
}

fn request_id(body: &[u8]) -> &[u8] {
    let Some(start) = find(body, b"\"id\"") else {
        return b"null";
    };
    let mut i = start + 4;
    while i < body.len() && (body[i] == b':' || body[i].is_ascii_whitespace()) {
        i += 1;
    }
    let begin = i;
    if i < body.len() && body[i] == b'"' {
        i += 1;
        while i < body.len() && body[i] != b'"' {
            i += if body[i] == b'\\' { 2 } else { 1 };
        }
        i = (i + 1).min(body.len());
    } else {
        while i < body.len()
            && !matches!(body[i], b',' | b'}' | b']')
            && !body[i].is_ascii_whitespace()
        {
            i += 1;
        }
    }
    if begin == i { b"null" } else { &body[begin..i] }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).expect("valid JSON")
    }

    #[test]
    fn answers_block_number_with_the_request_id() {
        let out = answer(br#"{"jsonrpc":"2.0","id":42,"method":"eth_blockNumber","params":[]}"#);
        let v = json(&out);
        assert_eq!(v["id"], 42);
        assert_eq!(v["result"], HEAD_HEIGHT);
    }

    #[test]
    fn echoes_string_ids_and_answers_balance_and_chain_id() {
        let out = answer(
            br#"{"jsonrpc":"2.0","method":"eth_getBalance","params":["0x00","latest"],"id":"a\"b"}"#,
        );
        let v = json(&out);
        assert_eq!(v["id"], "a\"b");
        assert_eq!(v["result"], BALANCE);
        let v = json(&answer(br#"{"id": 7 ,"method":"eth_chainId"}"#));
        assert_eq!(v["id"], 7);
        assert_eq!(v["result"], CHAIN_ID);
    }

    #[test]
    fn answers_blocks_by_number_and_the_finalized_tag() {
        let v = json(&answer(
            br#"{"jsonrpc":"2.0","id":3,"method":"eth_getBlockByNumber","params":["0x10",false]}"#,
        ));
        assert_eq!(v["result"]["number"], "0x10");
        assert_eq!(v["result"]["hash"].as_str().map(str::len), Some(66));
        let v = json(&answer(
            br#"{"jsonrpc":"2.0","id":4,"method":"eth_getBlockByNumber","params":["finalized",false]}"#,
        ));
        assert_eq!(
            v["result"]["number"],
            format!("{:#x}", head_height() - FINALITY_DEPTH)
        );
        let above = format!(
            r#"{{"id":5,"method":"eth_getBlockByNumber","params":["{:#x}",false]}}"#,
            head_height() + 1
        );
        assert_eq!(json(&answer(above.as_bytes()))["error"]["code"], -32601);
    }

    #[test]
    fn unknown_methods_get_method_not_found_and_missing_ids_null() {
        let v = json(&answer(br#"{"jsonrpc":"2.0","method":"eth_call"}"#));
        assert_eq!(v["id"], serde_json::Value::Null);
        assert_eq!(v["error"]["code"], -32601);
    }

    #[tokio::test]
    async fn serves_over_http() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(serve(listener));
        let client = meridian_test_kit::rpc::RpcClient::new();
        let resp = client
            .call(&format!("http://{addr}/bench"), "eth_blockNumber")
            .await
            .expect("answer");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.json()["result"], HEAD_HEIGHT);
        server.abort();
    }
}
