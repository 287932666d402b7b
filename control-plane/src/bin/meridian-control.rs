//! `meridian-control`: the control plane binary (flags → config → `app::run`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use meridian_common::telemetry::{self, TelemetryArgs};
use meridian_control_plane::app;
use meridian_control_plane::config::{ControlConfig, ServerOverrides};

/// Meridian's control plane: probes upstreams and streams routing snapshots.
#[derive(Debug, Parser)]
#[command(name = "meridian-control", version)]
struct Flags {
    /// Configuration file (TOML).
    #[arg(long, env = "MERIDIAN_CONFIG")]
    config: PathBuf,
    /// Overrides `server.grpc_listen`.
    #[arg(long, env = "MERIDIAN_GRPC_LISTEN")]
    grpc_listen: Option<SocketAddr>,
    /// Overrides `server.http_listen`.
    #[arg(long, env = "MERIDIAN_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// Overrides `server.data_dir`.
    #[arg(long, env = "MERIDIAN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let flags = Flags::parse();
    let _telemetry = match telemetry::init("meridian-control", &flags.telemetry) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("meridian-control: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut config = match ControlConfig::load(&flags.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("meridian-control: {e}");
            return ExitCode::FAILURE;
        }
    };
    ServerOverrides {
        grpc_listen: flags.grpc_listen,
        http_listen: flags.http_listen,
        data_dir: flags.data_dir,
    }
    .apply(&mut config.server);
    match app::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meridian-control: {e}");
            ExitCode::FAILURE
        }
    }
}
