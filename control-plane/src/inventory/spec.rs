//! What defines an upstream, independent of how it is doing.

use meridian_common::snapshot::Role;

/// Where an upstream was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// In `control.toml`.
    Config,
    /// Through the admin API (persisted in the store).
    Admin,
}

impl Origin {
    /// `"config"` or `"admin"`, as `ListUpstreams` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Admin => "admin",
        }
    }
}

/// The operator-given definition of one upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    /// Unique within its network.
    pub id: String,
    /// JSON-RPC endpoint (validated with `parse_node_url`).
    pub url: String,
    /// Region the node is in; empty for none.
    pub region: String,
    /// Relative traffic share, >= 1.
    pub weight: u32,
    /// Sorted, deduplicated, never empty.
    pub roles: Vec<Role>,
}

impl From<&crate::config::UpstreamConfig> for UpstreamSpec {
    fn from(c: &crate::config::UpstreamConfig) -> Self {
        Self {
            id: c.id.clone(),
            url: c.url.clone(),
            region: c.region.clone(),
            weight: c.weight,
            roles: c.roles.clone(),
        }
    }
}
