//! The routing-table model: what every data plane needs to route a request.
//!
//! These are validated domain types: a value of [`RoutingTable`] obtained
//! through [`crate::snapshot::decode_table`] has unique ids, parseable URLs and
//! known chain kinds, so request code never re-checks them.

pub use super::policy::{CacheSettings, NetworkPolicy};
use crate::chain::ChainKind;

/// The full routing state of one snapshot.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RoutingTable {
    /// Sorted by id (the builder sorts), so equal content encodes equally.
    pub networks: Vec<Network>,
    /// When the control plane built it (Unix ms). Not part of the content hash.
    pub generated_at_unix_ms: u64,
}

impl RoutingTable {
    pub fn network(&self, id: &str) -> Option<&Network> {
        self.networks.iter().find(|n| n.id == id)
    }
}

/// One network, served under `/<id>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub id: String,
    pub chain: ChainKind,
    /// Reference node and last-resort fallback.
    pub leader_url: Option<String>,
    /// Sorted by id.
    pub upstreams: Vec<Upstream>,
    pub policy: NetworkPolicy,
    pub cache: CacheSettings,
    /// Host names whose requests are for this network at the root of the
    /// address (lower case, no port).
    pub hosts: Vec<String>,
}

/// The control plane's verdict on an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamState {
    /// Takes traffic.
    Healthy,
    /// Answers, but too far behind the reference height.
    Lagging,
    /// Errors, times out, answers malformed, or not yet proven healthy.
    Failing,
    /// Excluded for integrity, e.g. serving another chain.
    Quarantined,
}

impl UpstreamState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Lagging => "lagging",
            Self::Failing => "failing",
            Self::Quarantined => "quarantined",
        }
    }
}

/// What an upstream is good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Read,
    Write,
    Archive,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Archive => "archive",
        }
    }

    /// The roles an upstream has when none are configured.
    pub const DEFAULT: [Role; 2] = [Role::Read, Role::Write];
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "archive" => Ok(Self::Archive),
            other => Err(format!(
                "unknown role {other:?} (expected read, write or archive)"
            )),
        }
    }
}

/// One upstream node of a network, with the control plane's view of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub id: String,
    pub url: String,
    pub region: String,
    pub weight: u32,
    /// Sorted, deduplicated, never empty.
    pub roles: Vec<Role>,
    pub state: UpstreamState,
    pub head_height: u64,
    pub lag: u64,
    pub latency_ewma_us: u64,
    /// 0–100.
    pub score: u32,
    pub reason: String,
}

impl Upstream {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Why a routing table was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("network id {0:?} is not a valid path segment (use letters, digits, '-', '_', '.')")]
    BadNetworkId(String),
    #[error("network {0:?} appears twice")]
    DuplicateNetwork(String),
    #[error("network {network:?}: unknown chain kind {chain:?}")]
    UnknownChain { network: String, chain: String },
    #[error("network {network:?}: leader: {error}")]
    BadLeader {
        network: String,
        error: crate::url::UrlError,
    },
    #[error("network {network:?}: upstream id {id:?} is empty or not printable")]
    BadUpstreamId { network: String, id: String },
    #[error("network {network:?}: upstream {id:?} appears twice")]
    DuplicateUpstream { network: String, id: String },
    #[error("network {network:?}: upstream {id:?}: {error}")]
    BadUpstreamUrl {
        network: String,
        id: String,
        error: crate::url::UrlError,
    },
    #[error("network {network:?}: upstream {id:?}: {what}")]
    BadUpstream {
        network: String,
        id: String,
        what: String,
    },
    #[error("network {network:?}: {what}")]
    BadPolicy { network: String, what: String },
    #[error(
        "network {network:?}: {host:?} is not a host name (lower-case letters, digits, '-' and '.', no port)"
    )]
    BadHost { network: String, host: String },
    #[error("host {host:?} is claimed by networks {first:?} and {second:?}")]
    DuplicateHost {
        host: String,
        first: String,
        second: String,
    },
    #[error("content hash mismatch: snapshot says {claimed}, table hashes to {actual}")]
    HashMismatch { claimed: String, actual: String },
    #[error("snapshot has no routing table")]
    MissingTable,
}

/// A network id must be usable as one URL path segment.
pub fn valid_network_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && id != "."
        && id != ".."
}

/// A host name a network is served at: lower-case DNS letters, digits, `-`
/// and `.`, at most 253 characters, no port (the `Host` header is compared
/// without its port, in lower case).
pub fn valid_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && !host.starts_with(['.', '-'])
        && !host.ends_with('.')
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'))
}

/// An upstream id is shown in headers (`x-handled-by`), so it must be a
/// printable, header-safe token.
pub fn valid_upstream_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
}
