//! Trace propagation across instances: every span of one transaction, on
//! whichever instance it opens, carries the transaction's trace id.
//!
//! The spans are read by a capturing `tracing` layer installed once as the
//! process's global subscriber (tests of a binary run on many threads). It
//! keeps only the spans of [`TRACED`] transactions, so other tests in the
//! same binary cost it nothing but a filter.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::json;
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use super::{Behave, Journal, Site, WAIT, register};
use crate::orchestrator::{Orchestrator, OrchestratorConfig, SagaStatus, TransactionId};
use crate::trace::{TARGET, TraceParent};
use crate::worker::WorkerHost;
use crate::workflow::{StepDef, WorkflowDef};

/// The workflow whose spans are captured.
const TRACED: &str = "traced";

/// One captured span: its name and fields.
#[derive(Debug, Clone, Default)]
struct Captured {
    name: &'static str,
    fields: HashMap<String, String>,
}

#[derive(Default)]
struct Spans {
    /// Captured spans by `tracing` id (the layer's own bookkeeping).
    live: HashMap<u64, Captured>,
    /// Transactions of the traced workflow seen so far.
    traced: HashSet<String>,
    /// Spans of traced transactions, in creation order.
    kept: Vec<Captured>,
}

struct Capture(Arc<Mutex<Spans>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        if attrs.metadata().target() != TARGET {
            return;
        }
        let mut c = Captured {
            name: attrs.metadata().name(),
            fields: HashMap::new(),
        };
        attrs.record(&mut Fields(&mut c.fields));
        if let Ok(mut spans) = self.0.lock() {
            spans.live.insert(id.into_u64(), c);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Ok(mut spans) = self.0.lock()
            && let Some(c) = spans.live.get_mut(&id.into_u64())
        {
            values.record(&mut Fields(&mut c.fields));
        }
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        let Ok(mut spans) = self.0.lock() else { return };
        let Some(c) = spans.live.remove(&id.into_u64()) else {
            return;
        };
        let tx = c.fields.get("tx").cloned().unwrap_or_default();
        if c.fields.get("workflow").map(String::as_str) == Some(TRACED) {
            spans.traced.insert(tx.clone());
        }
        if spans.traced.contains(&tx) {
            spans.kept.push(c);
        }
    }
}

/// The process's capture (installed on first use). `None` when another
/// global subscriber was installed first: the behaviour then cannot see
/// spans and says so.
fn capture() -> Option<Arc<Mutex<Spans>>> {
    static CAPTURE: OnceLock<Option<Arc<Mutex<Spans>>>> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let spans = Arc::new(Mutex::new(Spans::default()));
            let filter =
                tracing_subscriber::filter::Targets::new().with_target(TARGET, tracing::Level::DEBUG);
            let subscriber = tracing_subscriber::registry().with(Capture(spans.clone()).with_filter(filter));
            tracing::subscriber::set_global_default(subscriber)
                .ok()
                .map(|()| spans)
        })
        .clone()
}

/// The captured spans of `tx` (closed ones only).
fn spans_of(spans: &Mutex<Spans>, tx: &TransactionId) -> Vec<Captured> {
    spans
        .lock()
        .map(|s| {
            s.kept
                .iter()
                .filter(|c| c.fields.get("tx") == Some(&tx.0))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (briefly) until `tx` has `want` closed `step` and `result` spans:
/// the last result's span closes a moment after the state is final.
async fn settled(spans: &Mutex<Spans>, tx: &TransactionId, want: usize) -> Vec<Captured> {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        let got = spans_of(spans, tx);
        let count = |name: &str| got.iter().filter(|c| c.name == name).count();
        if count("step") >= want && count("result") >= want {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    spans_of(spans, tx)
}

/// A client instance submits, a serving instance (steps queued, not run
/// in-process) runs both steps: the spans of each transaction, on both
/// instances, share the trace id of the caller's `traceparent` (or,
/// without one, of the transaction's own new trace); each step's span is a
/// child of the submitting span, and each landed result's span a child of
/// the run that sent it.
pub async fn spans_of_one_transaction_share_a_trace_across_instances(site: &dyn Site) {
    let Some(spans) = capture() else {
        eprintln!("SKIP: another global tracing subscriber is installed; cannot capture spans");
        return;
    };
    let journal = Journal::default();
    let wf = WorkflowDef::builder(TRACED)
        .step(StepDef::new("first", "trace-a"))
        .step(StepDef::new("second", "trace-b"))
        .build();
    let (transport, store) = site.connect().await;
    let client = Orchestrator::connect(transport, store, OrchestratorConfig::default())
        .await
        .expect("client");
    client.register_workflow(wf.clone()).expect("workflow");
    let (transport, store) = site.connect().await;
    let host = WorkerHost::builder().build().expect("host");
    register(&host, &journal, "trace-a", Behave::Ok);
    register(&host, &journal, "trace-b", Behave::Ok);
    let config = OrchestratorConfig::default().with_local_dispatch(false);
    let server = Orchestrator::start(transport, store, host, config)
        .await
        .expect("server");
    server.register_workflow(wf).expect("workflow");

    let caller: TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        .parse()
        .expect("valid");
    let joined = client
        .execute_in_trace(TRACED, json!({}), Some(caller))
        .await
        .expect("execute");
    let fresh = client.execute(TRACED, json!({})).await.expect("execute");
    for tx in [&joined, &fresh] {
        let snap = client.wait(tx, WAIT).await.expect("wait");
        assert_eq!(snap.status, SagaStatus::Completed, "{tx}");
        assert_eq!(journal.for_tx(tx), ["trace-a", "trace-b"]);
    }

    for (tx, want_trace) in [(&joined, Some(caller.trace_id_hex())), (&fresh, None)] {
        let got = settled(&spans, tx, 2).await;
        let submit = got
            .iter()
            .find(|c| c.name == "workflow.submit")
            .unwrap_or_else(|| panic!("no submit span for {tx}: {got:?}"));
        let trace_id = submit
            .fields
            .get("trace_id")
            .cloned()
            .expect("the submit span has a trace id");
        if let Some(want) = &want_trace {
            assert_eq!(&trace_id, want, "the caller's trace is continued");
            assert_eq!(
                submit.fields.get("parent_span_id").map(String::as_str),
                Some("b7ad6b7169203331"),
                "the submit span is a child of the caller's span"
            );
        }
        let steps: Vec<_> = got.iter().filter(|c| c.name == "step").collect();
        let workers: HashSet<_> = steps.iter().filter_map(|c| c.fields.get("worker")).collect();
        assert_eq!(workers.len(), 2, "a span for each step: {steps:?}");
        for c in &got {
            assert_eq!(
                c.fields.get("trace_id"),
                Some(&trace_id),
                "one trace for {tx}: {c:?}"
            );
        }
        for c in &steps {
            assert_eq!(
                c.fields.get("parent_span_id"),
                submit.fields.get("span_id"),
                "{c:?}"
            );
        }
        // Each result crossed the transport: landing it is a child of the
        // run that sent it.
        for step in &steps {
            assert!(
                got.iter()
                    .any(|c| c.name == "result"
                        && c.fields.get("parent_span_id") == step.fields.get("span_id")),
                "the result of {step:?} has a span that is its child: {got:?}"
            );
        }
    }
}
