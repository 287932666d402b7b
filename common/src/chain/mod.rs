//! Chain kinds: the only place where Meridian knows anything chain-specific.
//!
//! Each kind is one module implementing [`Chain`]. Both planes ask
//! [`ChainKind::chain`] for behaviour and never branch on the kind
//! themselves, so adding a chain is adding a module here.

mod evm;
mod hex;
mod icon;

use std::fmt;
use std::str::FromStr;

use serde_json::Value;
use serde_json::value::RawValue;

pub use evm::Evm;
pub use icon::Icon;

/// Which family of node software a network runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ChainKind {
    /// Ethereum execution JSON-RPC (geth, besu, reth, ganache, …).
    Evm,
    /// ICON 2 (goloop) JSON-RPC v3.
    Icon,
}

impl ChainKind {
    /// Every supported kind, for help texts and error messages.
    pub const ALL: [ChainKind; 2] = [ChainKind::Evm, ChainKind::Icon];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Evm => "evm",
            Self::Icon => "icon",
        }
    }

    /// The behaviour of this kind.
    pub fn chain(self) -> &'static dyn Chain {
        match self {
            Self::Evm => &Evm,
            Self::Icon => &Icon,
        }
    }
}

impl fmt::Display for ChainKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown chain kind name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown chain kind {0:?} (supported: evm, icon)")]
pub struct UnknownChainKind(pub String);

impl FromStr for ChainKind {
    type Err = UnknownChainKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChainKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownChainKind(s.to_owned()))
    }
}

/// The `message` of a JSON-RPC `error` object, lower-cased (what the chain
/// modules match node errors on); `None` when it cannot be read.
fn error_message(error: &RawValue) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Error<'a> {
        #[serde(borrow, default)]
        message: std::borrow::Cow<'a, str>,
    }
    serde_json::from_str::<Error<'_>>(error.get())
        .ok()
        .map(|e| e.message.to_ascii_lowercase())
}

/// A set of chain kinds: what a data plane says it serves in its `Hello`
/// (`snapshot.proto`, rule 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainKinds(u32);

impl ChainKinds {
    /// Every kind this build knows.
    pub fn all() -> Self {
        ChainKind::ALL
            .into_iter()
            .fold(ChainKinds(0), |set, kind| set.with(kind))
    }

    /// What a data plane serves from the names in its Hello. Names this
    /// build does not know (a newer data plane's) are ignored; no names at
    /// all is a data plane from before chain kinds were advertised, which
    /// serves EVM only (the one kind there was).
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Self {
        if names.is_empty() {
            return ChainKinds(0).with(ChainKind::Evm);
        }
        names
            .iter()
            .filter_map(|n| n.as_ref().parse().ok())
            .fold(ChainKinds(0), |set, kind| set.with(kind))
    }

    /// The empty set.
    pub fn none() -> Self {
        ChainKinds(0)
    }

    /// The set of `kinds`.
    pub fn from_kinds(kinds: impl IntoIterator<Item = ChainKind>) -> Self {
        kinds
            .into_iter()
            .fold(ChainKinds(0), |set, kind| set.with(kind))
    }

    /// Whether every kind of `other` is in this set.
    pub fn covers(self, other: ChainKinds) -> bool {
        other.0 & !self.0 == 0
    }

    fn with(self, kind: ChainKind) -> Self {
        ChainKinds(self.0 | 1 << kind as u32)
    }

    pub fn contains(self, kind: ChainKind) -> bool {
        self.0 & (1 << kind as u32) != 0
    }

    /// The names of the kinds in the set, in [`ChainKind::ALL`] order.
    pub fn names(self) -> Vec<String> {
        ChainKind::ALL
            .into_iter()
            .filter(|k| self.contains(*k))
            .map(|k| k.as_str().to_owned())
            .collect()
    }
}

/// How a method is treated on the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodClass {
    /// Side-effect free; may be retried and hedged.
    Read,
    /// Changes chain state; never blindly retried.
    Write,
    /// Needs a persistent connection (WebSocket).
    Subscribe,
}

/// The block a read refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockRef {
    Number(u64),
    Earliest,
    Latest,
    Pending,
    Safe,
    Finalized,
}

/// Whether and how an answer may be cached, by the call that asked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheClass {
    /// Never changes for a network (EVM `eth_chainId`): kept until evicted.
    Static,
    /// Follows the head (EVM `eth_blockNumber`, reads at `latest`): kept
    /// for the network's head TTL only.
    Head,
    /// Names a block by number: immutable once the block is at or below
    /// the network's finalized height; above it, as [`CacheClass::Head`].
    AtHeight(u64),
    /// Names a block or transaction by hash: immutable when the answer's
    /// own block number ([`Chain::answer_block`]) is at or below the
    /// finalized height; otherwise as [`CacheClass::Head`].
    ByHash,
    /// Never cached: writes, `pending`, filters, subscriptions, answers
    /// that differ between nodes, anything unknown.
    Never,
}

/// What the path a client used after its network (`/<network>/…` on the
/// shared listener, or the whole path at a network's own address) asks of
/// the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathRoute {
    /// Every read goes to archive upstreams (EVM `/archive`).
    pub archive: bool,
    /// The path is sent to the node as it is, in place of the path of the
    /// upstream's URL (ICON `/api/v3/<channel>`): the node serves what the
    /// client asked for at that path.
    pub forward: bool,
}

impl PathRoute {
    /// The network's default: the upstream's own URL, any upstream.
    pub const DEFAULT: PathRoute = PathRoute {
        archive: false,
        forward: false,
    };
}

/// A JSON-RPC call a probe sends to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeCall {
    /// For span and log names.
    pub method: &'static str,
    /// The complete request body.
    pub body: &'static str,
}

/// An answer a probe could not use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProbeAnswerError(pub String);

/// Chain-specific behaviour, one implementation per [`ChainKind`].
pub trait Chain: Send + Sync + 'static {
    fn kind(&self) -> ChainKind;

    /// The call that asks a node for its head height.
    fn head_call(&self) -> ProbeCall;

    /// The head height in the `result` of [`Chain::head_call`].
    fn parse_head(&self, result: &Value) -> Result<u64, ProbeAnswerError>;

    /// The call that asks a node which chain it serves.
    fn chain_id_call(&self) -> ProbeCall;

    /// A canonical chain identity from the `result` of
    /// [`Chain::chain_id_call`], comparable across nodes.
    fn parse_chain_id(&self, result: &Value) -> Result<String, ProbeAnswerError>;

    /// The call that asks a node for the highest block its chain will not
    /// reorganise, if the chain has one.
    fn finalized_call(&self) -> Option<ProbeCall>;

    /// The finalized height in the `result` of [`Chain::finalized_call`];
    /// `None` when the node has none to report (e.g. an EVM chain without
    /// the `finalized` tag's block yet).
    fn parse_finalized(&self, result: &Value) -> Result<Option<u64>, ProbeAnswerError>;

    /// Blocks below the head taken as final when no node reports a
    /// finalized height (a network's `finality_depth` defaults to it).
    fn default_finality_depth(&self) -> u64;

    /// How an answer to `method` with `params` may be cached.
    fn cache_class(&self, method: &str, params: Option<&RawValue>) -> CacheClass;

    /// The block number an answer (a `result`) belongs to, for
    /// [`CacheClass::ByHash`]; `None` when it names none (e.g. `null`).
    fn answer_block(&self, result: &RawValue) -> Option<u64>;

    /// The one block (number and hash) an answer shows, for reorg
    /// detection: two answers naming the same number with different
    /// hashes mean the chain was reorganised there. `None` when the
    /// answer shows no block, or several.
    fn answer_block_hash(&self, result: &RawValue) -> Option<(u64, String)>;

    /// `params` in a canonical form, so calls that mean the same share a
    /// cache entry (the key is network, method and this); `None` when the
    /// params cannot be read (the call is then not cached).
    fn canonical_params(&self, method: &str, params: Option<&RawValue>) -> Option<String>;

    /// What `path` (after the network: empty, `/`, or more) means for this
    /// chain's clients; `None` when it is not a path of this chain's API
    /// (refused before any upstream: HTTP 404).
    fn path_route(&self, path: &str) -> Option<PathRoute>;

    /// How the request path treats `method`.
    fn method_class(&self, method: &str) -> MethodClass;

    /// The common methods that get their own label in request metrics;
    /// every other method is counted as `other`, so a client cannot grow
    /// the label set without bound.
    fn metric_methods(&self) -> &'static [&'static str];

    /// The block a read names, if any, from its raw `params`. Used to send
    /// reads of old blocks to archive upstreams. `None` when the method
    /// names no block or the params cannot be read (the upstream will say so).
    fn block_ref(&self, method: &str, params: Option<&RawValue>) -> Option<BlockRef>;

    /// Whether a write's JSON-RPC `error` object means the node already has
    /// the transaction, which counts as success when broadcasting.
    fn is_already_known(&self, error: &RawValue) -> bool;

    /// Whether `method` may be broadcast to several write upstreams.
    fn broadcastable(&self, method: &str) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_without_kinds_is_an_evm_only_data_plane() {
        let legacy = ChainKinds::from_names::<&str>(&[]);
        assert!(legacy.contains(ChainKind::Evm));
        assert!(!legacy.contains(ChainKind::Icon));
        let both = ChainKinds::from_names(&["icon", "evm", "solana"]);
        assert_eq!(both, ChainKinds::all(), "an unknown name is ignored");
        assert_eq!(both.names(), ["evm", "icon"]);
        assert!(!ChainKinds::from_names(&["solana"]).contains(ChainKind::Evm));
    }
}
