//! `meridian-sandbox`: a whole deployment in one process: an EVM network on
//! three mock EVM nodes, an ICON network on two mock goloop nodes, a control
//! plane and data planes for eu, us and ap. Prints the URLs and client lines
//! that work, last, after the planes are serving; Ctrl-C stops everything.

use clap::Parser;
use meridian_common::telemetry::{self, LogFormat, TelemetryArgs};
use meridian_integration_tests::sandbox::{self, SandboxOptions};

/// Run a whole Meridian deployment locally, against mock nodes.
#[derive(Debug, Parser)]
#[command(name = "meridian-sandbox", version)]
struct Args {
    /// The first of the sandbox's fixed ports (EVM nodes +0..2, ICON nodes
    /// +3..4, control plane +10/+11, data planes +20..22, their admin
    /// +30..32, their ICON listeners +40..42), so the printed lines stay
    /// the same from one start to the next.
    #[arg(long, env = "MERIDIAN_SANDBOX_BASE_PORT", default_value_t = 18_500)]
    base_port: u16,
    /// Free ports everywhere instead of fixed ones (to run several sandboxes).
    #[arg(long, conflicts_with = "base_port")]
    free_ports: bool,
    /// Which log lines of the planes are shown (tracing filter syntax):
    /// warnings and errors by default, so the banner stays readable;
    /// `info` shows everything the planes log.
    #[arg(long, env = "MERIDIAN_LOG", default_value = "warn")]
    log_filter: String,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let telemetry_args = TelemetryArgs {
        log_format: LogFormat::Text,
        log_filter: args.log_filter.clone(),
        otlp_endpoint: None,
    };
    let _telemetry = match telemetry::init("meridian-sandbox", &telemetry_args) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("meridian-sandbox: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let options = SandboxOptions {
        base_port: (!args.free_ports).then_some(args.base_port),
    };
    match sandbox::run(options).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meridian-sandbox: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
