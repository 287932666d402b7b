//! `meridianctl`: a thin client of `AdminService`.
//!
//! [`run`] returns the text to print, so tests drive the whole command line
//! against a real control plane without capturing stdout. Tables are the
//! default for people; `--json` is stable for scripts, errors included
//! ([`error_text`]; the shapes are pinned by `tests/meridianctl_json.rs`).

mod render;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use meridian_common::error_chain::error_chain;
use meridian_common::proto;
use meridian_common::proto::admin_service_client::AdminServiceClient;
use meridian_common::snapshot::{Role, encode_role};
use meridian_common::telemetry::TelemetryArgs;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint};

/// Command line of `meridianctl`.
#[derive(Debug, Parser)]
#[command(
    name = "meridianctl",
    version,
    about = "Operate a Meridian control plane."
)]
pub struct Cli {
    /// gRPC address of the control plane.
    #[arg(
        long,
        env = "MERIDIAN_CONTROL_PLANE",
        default_value = "http://127.0.0.1:50051"
    )]
    pub control_plane: String,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add, remove or list upstreams.
    Upstream {
        #[command(subcommand)]
        action: UpstreamCommand,
    },
    /// List the data planes and what they applied.
    Dataplanes,
    /// Show the snapshot currently published.
    Snapshot,
}

/// `meridianctl upstream …`.
#[derive(Debug, Subcommand)]
pub enum UpstreamCommand {
    /// Add an upstream at runtime (persisted; survives restarts).
    Add(AddArgs),
    /// Remove an upstream (runtime-added or from the config file).
    Remove {
        /// Network id.
        #[arg(long, short)]
        network: String,
        /// Upstream id.
        #[arg(long)]
        id: String,
    },
    /// List upstreams with their current probe state.
    List {
        /// Only this network.
        #[arg(long, short)]
        network: Option<String>,
    },
}

/// `meridianctl upstream add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Network id.
    #[arg(long, short)]
    pub network: String,
    /// Upstream id, unique within the network.
    #[arg(long)]
    pub id: String,
    /// JSON-RPC URL of the node (http or https).
    #[arg(long)]
    pub url: String,
    /// Region the node is in.
    #[arg(long, default_value = "")]
    pub region: String,
    /// Relative traffic share.
    #[arg(long, default_value_t = 1)]
    pub weight: u32,
    /// Role (read, write, archive); repeat for several. Default: read and write.
    #[arg(long = "role")]
    pub roles: Vec<String>,
}

/// What went wrong talking to the control plane.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("bad control-plane address {url:?}: {reason}")]
    Address { url: String, reason: String },
    #[error("cannot reach the control plane at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("{} ({:?})", .0.message(), .0.code())]
    Rpc(#[from] tonic::Status),
    #[error("{0}")]
    Usage(String),
}

async fn connect(url: &str) -> Result<AdminServiceClient<Channel>, CtlError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| CtlError::Address {
            url: url.to_owned(),
            reason: e.to_string(),
        })?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15));
    let channel = endpoint.connect().await.map_err(|e| CtlError::Connect {
        url: url.to_owned(),
        reason: error_chain(&e),
    })?;
    Ok(AdminServiceClient::new(channel)
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(crate::distribute::service::MAX_MESSAGE_BYTES))
}

fn role_to_wire(name: &str) -> Result<i32, CtlError> {
    let role: Role = name.parse().map_err(CtlError::Usage)?;
    Ok(encode_role(role).into())
}

/// What to print on stderr when [`run`] failed (JSON with `--json`).
pub fn error_text(cli: &Cli, e: &CtlError) -> String {
    render::error(cli.json, e)
}

/// Runs one command; returns what to print.
pub async fn run(cli: &Cli) -> Result<String, CtlError> {
    let json = cli.json;
    // Bad flags are refused before any connection is made.
    let roles = match &cli.command {
        Command::Upstream {
            action: UpstreamCommand::Add(add),
        } => add
            .roles
            .iter()
            .map(|r| role_to_wire(r))
            .collect::<Result<Vec<_>, _>>()?,
        _ => Vec::new(),
    };
    let mut client = connect(&cli.control_plane).await?;
    match &cli.command {
        Command::Upstream { action } => match action {
            UpstreamCommand::Add(add) => {
                client
                    .add_upstream(proto::AddUpstreamRequest {
                        network_id: add.network.clone(),
                        upstream_id: add.id.clone(),
                        url: add.url.clone(),
                        region: add.region.clone(),
                        weight: add.weight,
                        roles,
                    })
                    .await?;
                Ok(render::done(
                    json,
                    &format!("added upstream {} to network {}", add.id, add.network),
                ))
            }
            UpstreamCommand::Remove { network, id } => {
                client
                    .remove_upstream(proto::RemoveUpstreamRequest {
                        network_id: network.clone(),
                        upstream_id: id.clone(),
                    })
                    .await?;
                Ok(render::done(
                    json,
                    &format!("removed upstream {id} from network {network}"),
                ))
            }
            UpstreamCommand::List { network } => {
                let list = client
                    .list_upstreams(proto::ListUpstreamsRequest {
                        network_id: network.clone().unwrap_or_default(),
                    })
                    .await?
                    .into_inner();
                Ok(render::upstreams(json, &list.upstreams))
            }
        },
        Command::Dataplanes => {
            let list = client
                .list_data_planes(proto::ListDataPlanesRequest {})
                .await?
                .into_inner();
            Ok(render::dataplanes(
                json,
                &list.dataplanes,
                meridian_common::time::unix_ms(),
            ))
        }
        Command::Snapshot => {
            let snapshot = client
                .get_snapshot(proto::GetSnapshotRequest {})
                .await?
                .into_inner()
                .snapshot
                .unwrap_or_default();
            Ok(render::snapshot(json, &snapshot))
        }
    }
}
