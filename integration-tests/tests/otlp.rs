//! Traces reach an OTLP collector: a real OTLP/gRPC collector runs in the
//! test, telemetry is set up exactly as the binaries do it, and the spans of
//! a client request, a probe and a publication must arrive with their fields.
//!
//! Its own test binary, because telemetry installs a process-wide subscriber.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use meridian_common::telemetry::{self, LogFormat, TelemetryArgs};
use meridian_integration_tests::harness::*;
use meridian_test_kit::evm::MockEvmNode;
use meridian_test_kit::rpc::RpcClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;

/// One received span: its name and string/int attributes.
type Span = (String, HashMap<String, String>);

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    let attrs = span
                        .attributes
                        .into_iter()
                        .filter_map(|kv| {
                            let v = match kv.value?.value? {
                                Value::StringValue(s) => s,
                                Value::IntValue(i) => i.to_string(),
                                Value::BoolValue(b) => b.to_string(),
                                other => format!("{other:?}"),
                            };
                            Some((kv.key, v))
                        })
                        .collect();
                    spans.push((span.name, attrs));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    fn find(&self, name: &str, attr: (&str, &str)) -> bool {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|(n, a)| n == name && a.get(attr.0).map(String::as_str) == Some(attr.1))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_probe_and_publish_spans_reach_the_collector() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let guard = telemetry::init(
        "meridian-test",
        &TelemetryArgs {
            log_format: LogFormat::Json,
            log_filter: "info".into(),
            otlp_endpoint: Some(endpoint),
        },
    )
    .unwrap();

    let node = MockEvmNode::start().await;
    let cp_dir = tempfile::tempdir().unwrap();
    let cp = start_control_plane(&control_toml(
        cp_dir.path(),
        &[NetworkSpec::new("eth-otlp")
            .upstream("a", &node.url(), "eu")
            .healthy_after(1)],
    ))
    .await;
    let dp_dir = tempfile::tempdir().unwrap();
    let dp = start_data_plane(&control_plane_url(&cp), "eu", dp_dir.path()).await;
    let client = RpcClient::new();
    wait_handled_by(&client, &dp, "eth-otlp", "a", SETTLE).await;
    let answer = client
        .call(network_url(&dp, "eth-otlp"), "eth_blockNumber")
        .await
        .unwrap();
    assert_eq!(answer.status, 200);

    // The batch exporter sends every few seconds; poll generously.
    eventually(
        "the request, probe and publish spans are exported",
        Duration::from_secs(30),
        || {
            let c = collector.clone();
            async move {
                c.find("request", ("network", "eth-otlp"))
                    && c.find("request", ("upstream", "a"))
                    && c.find("request", ("method", "eth_blockNumber"))
                    && c.find("probe", ("network", "eth-otlp"))
                    && c.spans.lock().unwrap().iter().any(|(n, _)| n == "publish")
            }
        },
    )
    .await;

    dp.shutdown().await;
    cp.shutdown().await;
    drop(guard);
    server.abort();
}
