//! Logs and traces, set up the same way by every Meridian binary.
//!
//! Logs go to stderr (in blocks, see [`crate::log_writer`]),
//! human-readable or JSON (`--log-format`). When an OTLP endpoint is given
//! (`--otlp-endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT`), spans are also
//! exported over OTLP/gRPC in batches. Libraries only emit
//! `tracing` spans and events; only binaries call [`init`].
//!
//! Log lines are events only (see [`log_layer`]), and every layer has its
//! own filter, so without an OTLP endpoint no span is ever built: the data
//! plane's per-request span costs nothing unless traces are exported.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterExt as _, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::log_format::LeanText;
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
    // Each layer gets its own copy of the filter (per-layer filters, not a
    // global one): a global filter would build every enabled span even
    // when no layer wants spans.
    let filter = || {
        EnvFilter::try_new(&args.log_filter).map_err(|source| TelemetryError::Filter {
            filter: args.log_filter.clone(),
            source,
        })
    };
    let log_filter = filter()?;

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
    let (stderr, logs) = block_stderr();
    let mut layers = vec![log_layer(args.log_format, stderr, log_filter)];
    if let Some(p) = &provider {
        layers.push(otel_layer(p, service, filter()?));
    }
    tracing_subscriber::registry().with(layers).try_init()?;
    Ok(TelemetryGuard {
        provider,
        _logs: logs,
    })
}

/// The layer exporting spans to `provider`'s tracer.
fn otel_layer<S>(
    provider: &SdkTracerProvider,
    service: &'static str,
    filter: EnvFilter,
) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service))
        .with_filter(filter)
        .boxed()
}

/// The layer writing log lines in `format` to `writer`.
///
/// It sees events only: every line carries its own fields, and a log layer
/// that saw spans would format their fields into a string on every
/// `record`, on the request path. Spans are for traces; without an OTLP
/// endpoint no layer wants them and they are never built.
fn log_layer<S, W>(
    format: LogFormat,
    writer: W,
    filter: EnvFilter,
) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let events_only = filter_fn(|meta| meta.is_event()).and(filter);
    match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .event_format(LeanText)
            .with_writer(writer)
            .with_filter(events_only)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(writer)
            .with_filter(events_only)
            .boxed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_format::tests::Capture;

    /// The composition `init` makes, with a tracer provider that exports
    /// nowhere standing in for OTLP.
    fn subscriber(
        format: LogFormat,
        capture: &Capture,
        otlp: Option<&SdkTracerProvider>,
    ) -> impl Subscriber + Send + Sync {
        let mut layers = vec![log_layer(format, capture.clone(), EnvFilter::new("info"))];
        if let Some(p) = otlp {
            layers.push(otel_layer(p, "test", EnvFilter::new("info")));
        }
        tracing_subscriber::registry().with(layers)
    }

    #[test]
    fn spans_are_built_only_for_traces_and_events_are_logged() {
        let provider = SdkTracerProvider::builder().build();
        for format in [LogFormat::Text, LogFormat::Json] {
            for otlp in [None, Some(&provider)] {
                let capture = Capture::default();
                tracing::subscriber::with_default(subscriber(format, &capture, otlp), || {
                    let span = tracing::info_span!("request", network = "eth");
                    assert_eq!(span.is_disabled(), otlp.is_none(), "{format:?}");
                    let _entered = span.enter();
                    tracing::info!(upstream = "a", "logged");
                    tracing::debug!("filtered out");
                });
                let text = capture.text();
                assert_eq!(text.lines().count(), 1, "{format:?}: {text}");
                assert!(
                    text.contains("logged") && text.contains("upstream"),
                    "{text}"
                );
                assert!(
                    !text.contains("eth"),
                    "{format:?}: span fields logged: {text}"
                );
            }
        }
    }
}
