//! Method names that get their own label in `meridian_requests_total`.
//!
//! Labels must come from a fixed set: a client can send any method name, and
//! using it as a label would let one client grow the metrics without bound
//! (and make the hot path allocate). Every method not listed here is counted
//! as `other`.
//!
//! This list is chain knowledge and belongs to the chain module in `common`
//! (a `Chain::metric_methods()`); it lives here until that exists, and this
//! function is the only place in the data plane that looks at the kind.

use meridian_common::chain::ChainKind;

/// The common methods of EVM nodes.
const EVM: &[&str] = &[
    "debug_traceCall",
    "debug_traceTransaction",
    "eth_blockNumber",
    "eth_call",
    "eth_chainId",
    "eth_estimateGas",
    "eth_feeHistory",
    "eth_gasPrice",
    "eth_getBalance",
    "eth_getBlockByHash",
    "eth_getBlockByNumber",
    "eth_getBlockReceipts",
    "eth_getCode",
    "eth_getLogs",
    "eth_getProof",
    "eth_getStorageAt",
    "eth_getTransactionByHash",
    "eth_getTransactionCount",
    "eth_getTransactionReceipt",
    "eth_maxPriorityFeePerGas",
    "eth_sendRawTransaction",
    "eth_sendTransaction",
    "eth_subscribe",
    "eth_syncing",
    "eth_unsubscribe",
    "net_version",
    "trace_block",
    "trace_transaction",
    "web3_clientVersion",
];

/// The labelled methods of `kind`.
pub fn metric_methods(kind: ChainKind) -> &'static [&'static str] {
    match kind {
        ChainKind::Evm => EVM,
    }
}
