//! One probe of one node: its head height, chain id and (where the chain
//! has one) finalized height, with latency.
//!
//! Both calls come from the network's chain module (`ChainKind::chain()`),
//! so nothing here knows about EVM. Each call has a bounded deadline and a
//! bounded answer size: a node that hangs or streams garbage is failing, not
//! a reason for the control plane to wait or to buffer without limit.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use meridian_common::chain::{Chain, ProbeCall};
use meridian_common::error_chain::error_chain;
use meridian_common::node_client::NodeClient;
use serde_json::Value;

/// Largest probe answer read; real answers are well under 1 KiB.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What a node said in a passing probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeAnswer {
    /// Head height.
    pub height: u64,
    /// Canonical chain id (from the chain module).
    pub chain_id: String,
    /// Finalized height, if the node reports one. A node that cannot (an
    /// error, a tag it does not know, a malformed answer) still passes:
    /// finality is optional, the network then falls back to its depth.
    pub finalized: Option<u64>,
}

/// The result of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// Time until the head-height answer (or the failure).
    pub latency: Duration,
    /// The answer, or why there is none (error, timeout, malformed answer).
    pub result: Result<ProbeAnswer, String>,
}

/// Probes `url` with the head, chain-id and finalized calls of `chain`, each
/// bounded by `timeout`. The calls run concurrently.
pub async fn probe(
    client: &NodeClient,
    chain: &'static dyn Chain,
    url: &str,
    timeout: Duration,
) -> ProbeOutcome {
    let started = Instant::now();
    let head = async {
        let r = call(client, url, chain.head_call(), timeout).await;
        (r, started.elapsed())
    };
    let chain_id = call(client, url, chain.chain_id_call(), timeout);
    let finalized = async {
        let c = chain.finalized_call()?;
        match call(client, url, c, timeout).await.and_then(|v| {
            chain
                .parse_finalized(&v)
                .map_err(|e| format!("malformed finalized block: {e}"))
        }) {
            Ok(height) => height,
            Err(why) => {
                tracing::debug!(error = %why, "no finalized height");
                None
            }
        }
    };
    let ((head, latency), chain_id, finalized) = tokio::join!(head, chain_id, finalized);
    let result = head
        .and_then(|v| {
            chain
                .parse_head(&v)
                .map_err(|e| format!("malformed head height: {e}"))
        })
        .and_then(|height| {
            let id = chain_id?;
            let chain_id = chain
                .parse_chain_id(&id)
                .map_err(|e| format!("malformed chain id: {e}"))?;
            Ok(ProbeAnswer {
                height,
                chain_id,
                finalized,
            })
        });
    ProbeOutcome { latency, result }
}

/// One JSON-RPC call; the `result` value or a description of what went wrong.
async fn call(
    client: &NodeClient,
    url: &str,
    call: ProbeCall,
    timeout: Duration,
) -> Result<Value, String> {
    match tokio::time::timeout(timeout, call_inner(client, url, call)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "{}: no answer within {} ms",
            call.method,
            timeout.as_millis()
        )),
    }
}

async fn call_inner(client: &NodeClient, url: &str, call: ProbeCall) -> Result<Value, String> {
    let method = call.method;
    let request = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(call.body.as_bytes())))
        .map_err(|e| format!("{method}: cannot build request: {e}"))?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("{method}: {}", error_chain(&e)))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| format!("{method}: reading the answer: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("{method}: HTTP {status}"));
    }
    let mut answer: Value =
        serde_json::from_slice(&body).map_err(|e| format!("{method}: answer is not JSON: {e}"))?;
    if let Some(error) = answer.get("error") {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| error.to_string(), str::to_owned);
        return Err(format!("{method}: node error: {message}"));
    }
    match answer.get_mut("result") {
        Some(result) => Ok(result.take()),
        None => Err(format!("{method}: answer has no result")),
    }
}
