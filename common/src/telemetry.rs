//! Logs and traces, set up the same way by every Meridian binary.
//!
//! Logs go to stderr (in blocks, see [`crate::log_writer`]),
//! human-readable or JSON (`--log-format`). When an OTLP endpoint is given
//! (`--otlp-endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT`), spans are also
//! exported over OTLP/gRPC in batches. Libraries only emit
//! `tracing` spans and events; only binaries call [`init`].

use std::io::IsTerminal as _;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::log_writer::{LogFlusher, block_stderr};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event, for log pipelines.
    Json,
}

/// Telemetry flags shared by every binary.
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetryArgs {
    /// Log format.
    #[arg(long, env = "MERIDIAN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Which events to log, in `RUST_LOG` syntax (e.g. `info,meridian_data_plane=debug`).
    #[arg(long, env = "MERIDIAN_LOG", default_value = "info")]
    pub log_filter: String,
    /// OTLP/gRPC collector for trace export, e.g. `http://127.0.0.1:4317`.
    /// Unset: no export.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// Telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("bad log filter {filter:?}: {source}")]
    Filter {
        filter: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("cannot build the OTLP exporter for {endpoint}: {source}")]
    Exporter {
        endpoint: String,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    #[error("a global tracing subscriber is already set: {0}")]
    AlreadySet(#[from] tracing_subscriber::util::TryInitError),
}

/// Keeps the trace pipeline alive; dropping it flushes pending spans.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    /// Writes the log lines still buffered (dropped after the provider).
    _logs: LogFlusher,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("meridian: flushing traces failed: {e}");
        }
    }
}

/// Installs the global subscriber for `service` (e.g. "meridian-proxy").
/// Must be called from inside a Tokio runtime when OTLP export is on.
pub fn init(service: &'static str, args: &TelemetryArgs) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::try_new(&args.log_filter).map_err(|source| TelemetryError::Filter {
        filter: args.log_filter.clone(),
        source,
    })?;

    let provider = match &args.otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .map_err(|source| TelemetryError::Exporter {
                    endpoint: endpoint.clone(),
                    source,
                })?;
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(Resource::builder().with_service_name(service).build())
                    .build(),
            )
        }
        None => None,
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service)));

    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let (stderr, logs) = block_stderr();
    match args.log_format {
        // Colour codes only for a person at a terminal: in a log file they
        // are noise, and writing them costs measurable CPU per request line.
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(stderr),
            )
            .try_init()?,
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(stderr),
            )
            .try_init()?,
    }
    Ok(TelemetryGuard {
        provider,
        _logs: logs,
    })
}
