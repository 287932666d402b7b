//! `control.toml`: the control plane's configuration file.
//!
//! The shape is a contract (issue 2): fields may be added, never renamed.
//! Checks of a single value run inside its `Deserialize` (the
//! `deserialize_with` helpers below), so a bad value is reported with the
//! file, line and field path. Checks across values (duplicate ids, a chain id
//! that does not fit the chain kind) run after parsing and name the field
//! path, e.g. `networks[0].upstreams[1].id`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use meridian_common::chain::ChainKind;
use meridian_common::config::{ConfigError, load_toml, parse_toml};
use meridian_common::settings::{Outer, with_flat_block};
use meridian_common::snapshot::{
    CacheSettings, NetworkPolicy, Role, valid_network_id, valid_upstream_id,
};
use meridian_common::url::parse_node_url;
use serde::Deserialize;
use serde::de::{self, Deserializer};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// Listeners and storage (`[server]`); every field has a default.
    #[serde(default)]
    pub server: ServerConfig,
    /// The networks served (`[[networks]]`), each with its upstreams.
    #[serde(default)]
    pub networks: Vec<NetworkConfig>,
}

/// `[server]`: where the control plane listens and keeps its state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// gRPC listener for `SnapshotService` and `AdminService`.
    /// Default `127.0.0.1:50051`. Port 0 picks a free port.
    #[serde(default = "default_grpc_listen")]
    pub grpc_listen: SocketAddr,
    /// HTTP listener for `/health`, `/ready` and `/metrics`.
    /// Default `127.0.0.1:9090`. Port 0 picks a free port.
    #[serde(default = "default_http_listen")]
    pub http_listen: SocketAddr,
    /// Directory of the sled store (runtime upstreams, epoch, last snapshot,
    /// data-plane status). Created if missing. Default `./var/control`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            grpc_listen: default_grpc_listen(),
            http_listen: default_http_listen(),
            data_dir: default_data_dir(),
        }
    }
}

/// `[[networks]]`: one blockchain network, served under `/<id>`.
///
/// Deserialized in two parts sharing one table: the keys of the policy
/// block are read into `policy` as they come, every other key by the
/// derived deserializer, which refuses unknown keys (see
/// [`with_flat_block`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct NetworkConfig {
    /// URL path segment clients use (letters, digits, `-`, `_`, `.`).
    #[serde(deserialize_with = "network_id")]
    pub id: String,
    /// Chain kind; selects the chain module (`"evm"`).
    #[serde(deserialize_with = "chain_kind")]
    pub chain: ChainKind,
    /// Expected chain id (e.g. `1` or `"0x1"` for Ethereum mainnet), in the
    /// chain's canonical form after loading. Upstreams answering another id
    /// are quarantined. Unset: learned from the leader, else from the majority
    /// of answering upstreams.
    #[serde(default, deserialize_with = "chain_id")]
    pub chain_id: Option<String>,
    /// Reference node: its height counts for the reference height, and data
    /// planes fall back to it when no upstream is healthy. Optional.
    #[serde(default, deserialize_with = "optional_node_url")]
    pub leader: Option<String>,
    /// Host names whose requests are for this network at the root of the
    /// address, whatever the path (the `Host` header without its port,
    /// compared in lower case), e.g. `["icon.example.org"]`: for clients
    /// that refuse a gateway prefix (docs/chains.md). Unique across
    /// networks. Default: none.
    #[serde(default, deserialize_with = "host_names")]
    pub hosts: Vec<String>,
    /// Time between probe rounds, in milliseconds (>= 10). Default 1000.
    #[serde(
        default = "default_probe_interval_ms",
        deserialize_with = "probe_interval"
    )]
    pub probe_interval_ms: u64,
    /// Deadline of one probe, in milliseconds (>= 1).
    /// Default: `min(probe_interval_ms, 2000)`.
    #[serde(default, deserialize_with = "optional_positive_u64")]
    pub probe_timeout_ms: Option<u64>,
    /// An upstream more than this many blocks behind the reference height
    /// is lagging. Default 10.
    #[serde(default = "default_max_lag_blocks")]
    pub max_lag_blocks: u64,
    /// Consecutive passing probes before an upstream takes traffic (>= 1).
    /// Default 3.
    #[serde(default = "default_healthy_after", deserialize_with = "positive_u32")]
    pub healthy_after: u32,
    /// Consecutive failing probes before an upstream leaves rotation (>= 1).
    /// Default 2.
    #[serde(default = "default_unhealthy_after", deserialize_with = "positive_u32")]
    pub unhealthy_after: u32,
    /// The request policy data planes enforce (limits, method policy,
    /// retries, hedging, routing, ejection, admission). Its keys sit at
    /// this level of the table (`max_tries = 4`, not a sub-table); they are
    /// declared once in `meridian_common::snapshot::NetworkPolicy`, which
    /// also gives their defaults and checks.
    #[serde(skip)]
    pub policy: NetworkPolicy,
    /// `[networks.cache]`: how answers of this network may be cached;
    /// declared in `meridian_common::snapshot::CacheSettings`.
    #[serde(default)]
    pub cache: CacheSettings,
    /// The upstream nodes of this network (`[[networks.upstreams]]`).
    /// More can be added at runtime through the admin API.
    #[serde(default)]
    pub upstreams: Vec<UpstreamConfig>,
}

impl NetworkConfig {
    /// Time between probe rounds.
    pub fn probe_interval(&self) -> Duration {
        Duration::from_millis(self.probe_interval_ms)
    }

    /// Deadline of one probe.
    pub fn probe_timeout(&self) -> Duration {
        Duration::from_millis(
            self.probe_timeout_ms
                .unwrap_or(self.probe_interval_ms.min(2_000)),
        )
    }

    /// The request policy streamed to data planes for this network.
    pub fn policy(&self) -> NetworkPolicy {
        self.policy.clone()
    }
}

impl<'de> Outer<'de> for NetworkConfig {
    fn deserialize_outer<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        NetworkConfig::deserialize(d)
    }
}

impl<'de> Deserialize<'de> for NetworkConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (mut network, policy) = with_flat_block::<D, NetworkConfig, NetworkPolicy>(d)?;
        network.policy = policy;
        Ok(network)
    }
}

/// `[[networks.upstreams]]`: one upstream node defined in the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Unique within its network; shown in `x-handled-by`, so printable
    /// ASCII without spaces, at most 128 bytes.
    #[serde(deserialize_with = "upstream_id")]
    pub id: String,
    /// JSON-RPC endpoint, `http://` or `https://`.
    #[serde(deserialize_with = "node_url")]
    pub url: String,
    /// Region the node is in; data planes of that region prefer it.
    /// Default empty (no region: never preferred).
    #[serde(default)]
    pub region: String,
    /// Relative share of traffic among equals (>= 1). Default 1.
    #[serde(default = "default_weight", deserialize_with = "positive_u32")]
    pub weight: u32,
    /// What the node is good for: any of `"read"`, `"write"`, `"archive"`.
    /// Default `["read", "write"]`.
    #[serde(default = "default_roles", deserialize_with = "roles")]
    pub roles: Vec<Role>,
}

impl ControlConfig {
    /// Parses TOML text; errors name `path`, the line and the field.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<ControlConfig, ConfigError> {
        let mut config: ControlConfig = parse_toml(text, path)?;
        config.check(path)?;
        Ok(config)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<ControlConfig, ConfigError> {
        let mut config: ControlConfig = load_toml(path)?;
        config.check(path)?;
        Ok(config)
    }

    /// A network by id.
    pub fn network(&self, id: &str) -> Option<&NetworkConfig> {
        self.networks.iter().find(|n| n.id == id)
    }

    /// Checks across values, which cannot run inside one field's `Deserialize`.
    fn check(&mut self, path: &Path) -> Result<(), ConfigError> {
        let mut networks = HashSet::new();
        let mut hosts = std::collections::HashMap::new();
        for (i, network) in self.networks.iter_mut().enumerate() {
            for (j, host) in network.hosts.iter().enumerate() {
                if let Some(first) = hosts.insert(host.clone(), network.id.clone()) {
                    return Err(ConfigError::field(
                        path,
                        format!("networks[{i}].hosts[{j}]"),
                        format!("host {host:?} is already a host of network {first:?}"),
                    ));
                }
            }
            if !networks.insert(network.id.clone()) {
                return Err(ConfigError::field(
                    path,
                    format!("networks[{i}].id"),
                    format!("network {:?} is defined twice", network.id),
                ));
            }
            let mut upstreams = HashSet::new();
            for (j, upstream) in network.upstreams.iter().enumerate() {
                if !upstreams.insert(upstream.id.as_str()) {
                    return Err(ConfigError::field(
                        path,
                        format!("networks[{i}].upstreams[{j}].id"),
                        format!(
                            "upstream {:?} is defined twice in network {:?}",
                            upstream.id, network.id
                        ),
                    ));
                }
            }
            if let Some(raw) = &network.chain_id {
                let canonical = canonical_chain_id(network.chain, raw).ok_or_else(|| {
                    ConfigError::field(
                        path,
                        format!("networks[{i}].chain_id"),
                        format!("{raw:?} is not a chain id of a {} chain", network.chain),
                    )
                })?;
                network.chain_id = Some(canonical);
            }
        }
        Ok(())
    }
}

/// The canonical form the chain module gives `raw` (a decimal number or the
/// chain's own notation such as `"0x1"`), so it compares with probe answers.
fn canonical_chain_id(chain: ChainKind, raw: &str) -> Option<String> {
    let chain = chain.chain();
    if let Ok(id) = chain.parse_chain_id(&serde_json::Value::String(raw.to_owned())) {
        return Some(id);
    }
    // A decimal number: ask the chain module about its hex quantity form.
    let n: u64 = raw.parse().ok()?;
    chain
        .parse_chain_id(&serde_json::Value::String(format!("{n:#x}")))
        .ok()
}

/// Server-side overrides from flags or `MERIDIAN_*` environment variables,
/// applied after the file is loaded.
#[derive(Debug, Clone, Default)]
pub struct ServerOverrides {
    /// Replaces `server.grpc_listen` (`MERIDIAN_GRPC_LISTEN`).
    pub grpc_listen: Option<SocketAddr>,
    /// Replaces `server.http_listen` (`MERIDIAN_HTTP_LISTEN`).
    pub http_listen: Option<SocketAddr>,
    /// Replaces `server.data_dir` (`MERIDIAN_DATA_DIR`).
    pub data_dir: Option<PathBuf>,
}

impl ServerOverrides {
    /// Applies every override that is set.
    pub fn apply(&self, server: &mut ServerConfig) {
        if let Some(a) = self.grpc_listen {
            server.grpc_listen = a;
        }
        if let Some(a) = self.http_listen {
            server.http_listen = a;
        }
        if let Some(d) = &self.data_dir {
            server.data_dir.clone_from(d);
        }
    }
}

fn default_grpc_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50051))
}
fn default_http_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./var/control")
}
fn default_probe_interval_ms() -> u64 {
    1_000
}
fn default_max_lag_blocks() -> u64 {
    10
}
fn default_healthy_after() -> u32 {
    3
}
fn default_unhealthy_after() -> u32 {
    2
}
fn default_weight() -> u32 {
    1
}
fn default_roles() -> Vec<Role> {
    Role::DEFAULT.to_vec()
}

fn network_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let id = String::deserialize(d)?;
    if valid_network_id(&id) {
        Ok(id)
    } else {
        Err(de::Error::custom(format!(
            "network id {id:?} is not a valid path segment (use letters, digits, '-', '_', '.')"
        )))
    }
}

fn host_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let hosts = Vec::<String>::deserialize(d)?;
    hosts
        .into_iter()
        .map(|h| {
            let lower = h.to_ascii_lowercase();
            if meridian_common::snapshot::valid_host_name(&lower) {
                Ok(lower)
            } else {
                Err(de::Error::custom(format!(
                    "{h:?} is not a host name (letters, digits, '-' and '.', no port or scheme)"
                )))
            }
        })
        .collect()
}

fn upstream_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let id = String::deserialize(d)?;
    if valid_upstream_id(&id) {
        Ok(id)
    } else {
        Err(de::Error::custom(format!(
            "upstream id {id:?} must be 1-128 printable ASCII characters without spaces"
        )))
    }
}

fn chain_kind<'de, D: Deserializer<'de>>(d: D) -> Result<ChainKind, D::Error> {
    String::deserialize(d)?.parse().map_err(de::Error::custom)
}

fn chain_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }
    match Raw::deserialize(d) {
        Ok(Raw::Number(n)) => Ok(Some(n.to_string())),
        Ok(Raw::Text(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        Ok(Raw::Text(_)) => Err(de::Error::custom("chain id is empty")),
        Err(_) => Err(de::Error::custom(
            "expected a chain id: a non-negative integer or a string such as \"0x1\"",
        )),
    }
}

fn node_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let url = String::deserialize(d)?;
    parse_node_url(&url).map_err(de::Error::custom)?;
    Ok(url)
}

fn optional_node_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    node_url(d).map(Some)
}

fn probe_interval<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let ms = u64::deserialize(d)?;
    if ms < 10 {
        return Err(de::Error::custom(format!(
            "probe interval {ms} ms is below the minimum of 10 ms"
        )));
    }
    Ok(ms)
}

fn positive_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match u64::deserialize(d)? {
        0 => Err(de::Error::custom("must be at least 1")),
        n => Ok(n),
    }
}

fn positive_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    match u32::deserialize(d)? {
        0 => Err(de::Error::custom("must be at least 1")),
        n => Ok(n),
    }
}

fn optional_positive_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    positive_u64(d).map(Some)
}

fn roles<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Role>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    if names.is_empty() {
        return Err(de::Error::custom(
            "an upstream needs at least one role (read, write, archive)",
        ));
    }
    let mut roles = names
        .iter()
        .map(|n| n.parse::<Role>().map_err(de::Error::custom))
        .collect::<Result<Vec<_>, _>>()?;
    roles.sort_unstable();
    roles.dedup();
    Ok(roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"[server]
grpc_listen = "127.0.0.1:50051"
http_listen = "127.0.0.1:9090"
data_dir = "./var/control"

[[networks]]
id = "eth-local"
chain = "evm"
probe_interval_ms = 1000
max_lag_blocks = 10
healthy_after = 3
unhealthy_after = 2
leader = "http://127.0.0.1:8549"

[[networks.upstreams]]
id = "a"
url = "http://127.0.0.1:18545"
region = "eu"
weight = 1
"#;

    fn parse(text: &str) -> Result<ControlConfig, ConfigError> {
        ControlConfig::from_toml_str(text, Path::new("control.toml"))
    }

    #[test]
    fn parses_the_issue_example_with_defaults() {
        let c = parse(EXAMPLE).unwrap();
        assert_eq!(c.server.grpc_listen.port(), 50051);
        let n = &c.networks[0];
        assert_eq!(n.id, "eth-local");
        assert_eq!(n.chain, ChainKind::Evm);
        assert_eq!(n.leader.as_deref(), Some("http://127.0.0.1:8549"));
        assert_eq!(n.probe_timeout(), Duration::from_millis(1000));
        assert_eq!(n.policy.max_body_bytes, 1024 * 1024);
        assert_eq!(n.chain_id, None);
        assert_eq!(n.upstreams[0].roles, vec![Role::Read, Role::Write]);
        assert_eq!(n.policy(), NetworkPolicy::default());
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.server.http_listen, default_http_listen());
        assert_eq!(c.server.data_dir, PathBuf::from("./var/control"));
        assert!(c.networks.is_empty());
    }

    #[test]
    fn bad_url_names_file_line_and_field() {
        let text = EXAMPLE.replace("http://127.0.0.1:18545", "ftp://x");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, Some(17), "{e}");
        assert_eq!(e.field, "networks[0].upstreams[0].url");
        let shown = e.to_string();
        assert!(shown.starts_with("control.toml:17:"), "{shown}");
        assert!(shown.contains("http or https"), "{shown}");
    }

    #[test]
    fn bad_single_values_are_located() {
        for (from, to, line, field) in [
            (
                "chain = \"evm\"",
                "chain = \"martian\"",
                8,
                "networks[0].chain",
            ),
            (
                "healthy_after = 3",
                "healthy_after = 0",
                11,
                "networks[0].healthy_after",
            ),
            (
                "weight = 1",
                "weight = 0",
                19,
                "networks[0].upstreams[0].weight",
            ),
            (
                "id = \"a\"",
                "id = \"a b\"",
                16,
                "networks[0].upstreams[0].id",
            ),
            (
                "id = \"eth-local\"",
                "id = \"eth/local\"",
                7,
                "networks[0].id",
            ),
            (
                "region = \"eu\"",
                "region = \"eu\"\nroles = [\"reed\"]",
                19,
                "networks[0].upstreams[0].roles",
            ),
            (
                "leader = \"http://127.0.0.1:8549\"",
                "leader = \"nope\"",
                13,
                "networks[0].leader",
            ),
        ] {
            let e = parse(&EXAMPLE.replace(from, to)).unwrap_err();
            assert_eq!(e.line, Some(line), "{to}: {e}");
            assert_eq!(e.field, field, "{to}: {e}");
        }
    }

    #[test]
    fn unknown_fields_are_refused_with_their_line() {
        let e = parse(&EXAMPLE.replace("weight = 1", "weight = 1\nwieght = 2")).unwrap_err();
        assert_eq!(e.line, Some(20), "{e}");
        assert!(e.message.contains("wieght"), "{e}");
    }

    #[test]
    fn duplicate_upstream_id_names_its_path() {
        let text = format!(
            "{EXAMPLE}\n[[networks.upstreams]]\nid = \"a\"\nurl = \"http://127.0.0.1:1\"\n"
        );
        let e = parse(&text).unwrap_err();
        assert_eq!(e.field, "networks[0].upstreams[1].id");
        assert!(e.to_string().contains("defined twice"), "{e}");
    }

    #[test]
    fn hosts_are_host_names_and_belong_to_one_network() {
        let c = parse(&EXAMPLE.replace(
            "max_lag_blocks = 10",
            "max_lag_blocks = 10\nhosts = [\"ETH.example.org\"]",
        ))
        .unwrap();
        assert_eq!(c.networks[0].hosts, ["eth.example.org"]);
        let e = parse(&EXAMPLE.replace(
            "max_lag_blocks = 10",
            "max_lag_blocks = 10\nhosts = [\"eth.example.org:80\"]",
        ))
        .unwrap_err();
        assert!(e.field.contains("hosts"), "{e}");
        let text = format!(
            "{}\n[[networks]]\nid = \"other\"\nchain = \"evm\"\nhosts = [\"eth.example.org\"]\n",
            EXAMPLE.replace(
                "max_lag_blocks = 10",
                "max_lag_blocks = 10\nhosts = [\"eth.example.org\"]"
            )
        );
        let e = parse(&text).unwrap_err();
        assert_eq!(e.field, "networks[1].hosts[0]");
    }

    #[test]
    fn duplicate_network_id_names_its_path() {
        let text = format!("{EXAMPLE}\n[[networks]]\nid = \"eth-local\"\nchain = \"evm\"\n");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.field, "networks[1].id");
    }

    #[test]
    fn chain_ids_become_canonical() {
        for raw in [
            "chain_id = 1",
            "chain_id = \"0x1\"",
            "chain_id = \"0x01\"",
            "chain_id = \"1\"",
        ] {
            let c = parse(&EXAMPLE.replace("max_lag_blocks = 10", raw)).unwrap();
            assert_eq!(c.networks[0].chain_id.as_deref(), Some("1"), "{raw}");
        }
        let e =
            parse(&EXAMPLE.replace("max_lag_blocks = 10", "chain_id = \"mainnet\"")).unwrap_err();
        assert_eq!(e.field, "networks[0].chain_id");
    }

    #[test]
    fn policy_fields_reach_the_policy() {
        let text = EXAMPLE.replace(
            "max_lag_blocks = 10",
            "max_body_bytes = 2048\nmax_batch = 5\nrequest_timeout_ms = 300\ndeny_methods = [\"debug_*\"]\nprobe_timeout_ms = 250",
        );
        let n = &parse(&text).unwrap().networks[0];
        let p = n.policy();
        assert_eq!(
            (p.max_body_bytes, p.max_batch, p.request_timeout_ms),
            (2048, 5, 300)
        );
        assert_eq!(p.deny_methods, vec!["debug_*".to_owned()]);
        assert_eq!(n.probe_timeout(), Duration::from_millis(250));
    }

    #[test]
    fn resilience_fields_reach_the_policy() {
        let text = EXAMPLE.replace(
            "max_lag_blocks = 10",
            "max_tries = 4\nhedge_after_ms = 150\nhedge_from_p95 = true\narchive_after_blocks = 128\nwrite_broadcast = 2\neject_after_failures = 7\nmax_concurrency = 9\nmax_queue = 11\nmax_queue_wait_ms = 13",
        );
        let p = parse(&text).unwrap().networks[0].policy();
        assert_eq!(
            (
                p.max_tries,
                p.hedge_after_ms,
                p.hedge_from_p95,
                p.archive_after_blocks
            ),
            (4, 150, true, 128)
        );
        assert_eq!(
            (
                p.write_broadcast,
                p.eject_after_failures,
                p.max_concurrency,
                p.max_queue,
                p.max_queue_wait_ms
            ),
            (2, 7, 9, 11, 13)
        );
        let e = parse(&EXAMPLE.replace("max_lag_blocks = 10", "max_tries = 0")).unwrap_err();
        assert!(e.to_string().contains("max_tries"), "{e}");
    }

    #[test]
    fn policy_errors_name_line_and_field_like_any_other() {
        let zero = parse(&EXAMPLE.replace("max_lag_blocks = 10", "max_tries = 0")).unwrap_err();
        assert_eq!(
            (zero.line, zero.field.as_str()),
            (Some(10), "networks[0].max_tries")
        );
        assert!(zero.message.contains("must be at least 1"), "{zero}");
        let typo = parse(&EXAMPLE.replace("max_lag_blocks = 10", "max_trys = 2")).unwrap_err();
        assert!(typo.message.contains("unknown field `max_trys`"), "{typo}");
        assert_eq!(typo.line, Some(10));
        let twice = parse(&EXAMPLE.replace("max_lag_blocks = 10", "max_batch = 2\nmax_batch = 3"))
            .unwrap_err();
        assert_eq!(twice.line, Some(11), "{twice}");
        let pattern =
            parse(&EXAMPLE.replace("max_lag_blocks = 10", "deny_methods = [\"debug_ *\"]"))
                .unwrap_err();
        assert_eq!(pattern.field, "networks[0].deny_methods", "{pattern}");
    }

    #[test]
    fn the_cache_table_is_read_and_checked() {
        let with = |cache: &str| {
            parse(&EXAMPLE.replace(
                "[[networks.upstreams]]",
                &format!("[networks.cache]\n{cache}\n\n[[networks.upstreams]]"),
            ))
        };
        let n = &with("finality_depth = 12").unwrap().networks[0];
        assert_eq!(n.cache.finality_depth, 12);
        assert_eq!(
            parse(EXAMPLE).unwrap().networks[0].cache,
            CacheSettings::default()
        );
        let typo = with("finality_dept = 12").unwrap_err();
        assert!(
            typo.message.contains("unknown field `finality_dept`"),
            "{typo}"
        );
        let wrong = with("finality_depth = \"deep\"").unwrap_err();
        assert_eq!(wrong.field, "networks[0].cache.finality_depth", "{wrong}");
        assert_eq!(wrong.line, Some(16), "{wrong}");
    }

    #[test]
    fn overrides_replace_server_fields() {
        let mut c = parse(EXAMPLE).unwrap();
        ServerOverrides {
            grpc_listen: Some("127.0.0.1:0".parse().unwrap()),
            http_listen: None,
            data_dir: Some("/tmp/x".into()),
        }
        .apply(&mut c.server);
        assert_eq!(c.server.grpc_listen.port(), 0);
        assert_eq!(c.server.http_listen.port(), 9090);
        assert_eq!(c.server.data_dir, PathBuf::from("/tmp/x"));
    }
}
