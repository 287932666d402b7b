//! `meridianctl`: operate a control plane (flags → `ctl::run` → stdout).

use std::process::ExitCode;

use clap::Parser;
use meridian_common::telemetry;
use meridian_control_plane::ctl::{Cli, error_text, run};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _telemetry = match telemetry::init("meridianctl", &cli.telemetry) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("meridianctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(&cli).await {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("{}", error_text(&cli, &e));
            ExitCode::FAILURE
        }
    }
}
