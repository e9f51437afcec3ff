//! OTLP export (feature `otel`): the spans of one transaction, opened on
//! two instances, arrive at the exporter as one trace, parented as the
//! orchestrator says. Captured by the OpenTelemetry SDK's in-memory
//! exporter behind the same layer and linker `multiagents run` installs.
//!
//! Its own test binary: it installs the process's global subscriber.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use multiagents::orchestrator::{OrchestratorConfig, SagaStatus};
use multiagents::telemetry::{Export, install_linker, spans};
use multiagents::trace::TraceParent;
use multiagents::worker::{CallInfo, WorkerSpec, native};
use multiagents::workflow::{StepDef, WorkflowDef};
use multiagents::{MemoryStore, MemoryTransport, Runtime, StateStore, Transport};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

fn workflow() -> WorkflowDef {
    WorkflowDef::builder("traced")
        .step(StepDef::new("first", "trace-a"))
        .step(StepDef::new("second", "trace-b"))
        .build()
}

/// A client (submits only), or a server of both workers whose steps go
/// through the queue (no in-process runs), so every hop crosses the
/// transport.
async fn instance(serve: bool, transport: Arc<dyn Transport>, store: Arc<dyn StateStore>) -> Runtime {
    let mut builder = Runtime::builder()
        .transport(transport)
        .store(store)
        .workflow(workflow());
    if serve {
        for worker in ["trace-a", "trace-b"] {
            let ok = native(|_call: CallInfo, _input: Bytes| async move { Ok(Bytes::from_static(&[0xa0])) });
            builder = builder.worker_native(worker, ok, WorkerSpec::default());
        }
        builder = builder.config(OrchestratorConfig::default().with_local_dispatch(false));
    } else {
        builder = builder.client();
    }
    builder.build().await.expect("runtime")
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_export_one_trace_per_transaction() {
    let exporter = InMemorySpanExporter::default();
    let export = Export::with_provider(
        SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build(),
        "multiagents-test",
    );
    let subscriber = tracing_subscriber::registry().with(
        tracing_opentelemetry::layer()
            .with_tracer(export.tracer())
            .with_filter(spans()),
    );
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of this binary");
    install_linker().expect("the only linker of this binary");
    assert!(install_linker().is_err(), "a second linker is refused");

    let transport: Arc<dyn Transport> = Arc::new(MemoryTransport::new());
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let one = instance(false, transport.clone(), store.clone()).await;
    let two = instance(true, transport, store).await;

    let caller: TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        .parse()
        .expect("valid");
    let tx = one
        .execute_in_trace("traced", serde_json::json!({}), Some(caller))
        .await
        .expect("execute");
    let snap = two.wait(&tx, Duration::from_secs(10)).await.expect("wait");
    assert_eq!(snap.status, SagaStatus::Completed);

    // The last result's span ends just after the state is final.
    let mut mine = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let spans = exporter.get_finished_spans().expect("spans");
        mine = spans
            .into_iter()
            .filter(|s| attr(s, "tx").as_deref() == Some(tx.0.as_str()))
            .collect();
        let count = |name: &str| mine.iter().filter(|s| s.name == name).count();
        if count("step") == 2 && count("result") == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let want = TraceId::from_bytes(caller.trace_id());
    for s in &mine {
        assert_eq!(s.span_context.trace_id(), want, "one trace: {s:?}");
    }
    let submit = mine
        .iter()
        .find(|s| s.name == "workflow.submit")
        .expect("submit span");
    assert_eq!(submit.parent_span_id, SpanId::from_bytes(caller.span_id()));
    assert!(submit.parent_span_is_remote);
    assert_eq!(
        attr(submit, "span_id").as_deref(),
        Some(submit.span_context.span_id().to_string().as_str()),
        "the recorded span id is the exported one"
    );
    let steps: Vec<_> = mine.iter().filter(|s| s.name == "step").collect();
    assert_eq!(steps.len(), 2, "{mine:?}");
    for step in &steps {
        assert_eq!(step.parent_span_id, submit.span_context.span_id(), "{step:?}");
    }
    for step in &steps {
        assert!(
            mine.iter()
                .any(|r| r.name == "result" && r.parent_span_id == step.span_context.span_id()),
            "the result of {step:?} lands in a child span"
        );
    }

    one.shutdown(Duration::from_secs(2)).await.expect("shutdown");
    two.shutdown(Duration::from_secs(2)).await.expect("shutdown");
    tokio::task::spawn_blocking(move || export.shutdown())
        .await
        .expect("export stops");
}
