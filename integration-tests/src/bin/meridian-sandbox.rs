//! `meridian-sandbox`: three mock EVM nodes, a control plane and data planes
//! for eu, us and ap in one process. Prints the URLs and a curl line that
//! works; Ctrl-C stops everything.

use clap::Parser;
use meridian_common::telemetry::{self, TelemetryArgs};
use meridian_integration_tests::sandbox::{self, SandboxOptions};

/// Run a whole Meridian deployment locally, against mock EVM nodes.
#[derive(Debug, Parser)]
#[command(name = "meridian-sandbox", version)]
struct Args {
    /// Use fixed ports from here on (nodes +0..2, control plane +10/+11,
    /// data planes +20..22, their admin +30..32). Default: free ports.
    #[arg(long, env = "MERIDIAN_SANDBOX_BASE_PORT")]
    base_port: Option<u16>,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let _telemetry = match telemetry::init("meridian-sandbox", &args.telemetry) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("meridian-sandbox: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match sandbox::run(SandboxOptions {
        base_port: args.base_port,
    })
    .await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meridian-sandbox: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
