//! `Runtime`: built in code with native workers; delegation to the
//! orchestrator; backend selection; shutdown.

use std::time::Duration;

use bytes::Bytes;
use multiagents::orchestrator::{SagaStatus, StepKind};
use multiagents::worker::{CallInfo, WorkerSpec, fatal, native};
use multiagents::workflow::{Condition, RetryPolicy, StepDef, WorkflowDef};
use multiagents::{ErrorKind, Runtime};
use serde_json::{Value, json};

fn cbor(v: &Value) -> Bytes {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("cbor");
    out.into()
}

/// A worker that adds `{"<key>": true}` to the context; fails fatally when
/// the context has `"fail": "<key>"`.
fn step(key: &'static str) -> impl multiagents::worker::Worker {
    native(move |_call: CallInfo, input: Bytes| async move {
        let ctx: Value = ciborium::from_reader(&input[..]).map_err(|e| fatal(e.to_string()))?;
        if ctx["fail"] == key {
            return Err(fatal(format!("{key} refused")));
        }
        Ok(cbor(&json!({ key: true })))
    })
}

async fn runtime() -> Runtime {
    let wf = WorkflowDef::builder("flow")
        .step(
            StepDef::new("a", "a")
                .compensate_with("undo-a")
                .retry(RetryPolicy::none()),
        )
        .step(StepDef::new("b", "b").when(Condition::parse("input.with_b == true").expect("cel")))
        .step(StepDef::new("c", "c").retry(RetryPolicy::none()))
        .build();
    Runtime::builder()
        .worker_native("a", step("a"), WorkerSpec::default())
        .worker_native("b", step("b"), WorkerSpec::default())
        .worker_native("c", step("c"), WorkerSpec::default())
        .worker_native("undo-a", step("undo_a"), WorkerSpec::default())
        .workflow(wf)
        .build()
        .await
        .expect("runtime")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_built_in_code_runs_branches_and_compensations() {
    let rt = runtime().await;
    assert_eq!(rt.workflows(), ["flow"]);
    assert_eq!(rt.workers(), ["a", "b", "c", "undo-a"]);
    let mut events = rt.events().await.expect("events");

    let done = rt
        .run("flow", json!({"with_b": true}), Duration::from_secs(10))
        .await
        .expect("run");
    assert_eq!(done.status, SagaStatus::Completed);
    assert_eq!(
        done.output,
        Some(json!({"with_b": true, "a": true, "b": true, "c": true}))
    );

    let skipped = rt
        .run("flow", json!({"with_b": false}), Duration::from_secs(10))
        .await
        .expect("run");
    assert_eq!(skipped.status, SagaStatus::Completed);
    assert_eq!(skipped.output.as_ref().map(|o| o.get("b").is_none()), Some(true));

    let failed = rt
        .run(
            "flow",
            json!({"with_b": false, "fail": "c"}),
            Duration::from_secs(10),
        )
        .await
        .expect("run");
    assert_eq!(failed.status, SagaStatus::Compensated);
    let history = rt.history(&failed.tx).await.expect("history");
    let comps: Vec<&str> = history
        .iter()
        .filter(|r| r.kind == StepKind::Compensate)
        .map(|r| r.worker.as_str())
        .collect();
    assert_eq!(comps, ["undo-a"]);

    // Cancelling a finished transaction is refused; unknown ones are NotFound.
    assert_eq!(
        rt.cancel(&done.tx).await.expect_err("final").kind(),
        ErrorKind::InvalidInput
    );
    let unknown = multiagents::orchestrator::TransactionId::from("nope");
    assert_eq!(
        rt.status(&unknown).await.expect_err("unknown").kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        rt.execute("nope", json!({})).await.expect_err("wf").kind(),
        ErrorKind::NotFound
    );

    let page = rt.list(None, 10).await.expect("list");
    assert_eq!(page.items.len(), 3);

    let first = events.next().await.expect("open").expect("event");
    assert_eq!(first.name, "workflow.started");
    assert!(
        rt.cache_stats().is_none(),
        "the in-memory store gets no cache in front"
    );

    rt.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    let err = rt.execute("flow", json!({})).await.expect_err("closed");
    assert_eq!(err.kind(), ErrorKind::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builder_refuses_bad_backends_and_workflows_before_starting() {
    // A bad store option is refused before anything connects (or the
    // backend is named as not built in).
    let err = Runtime::builder()
        .store_url("kafka://localhost:9092?partitions=0")
        .build()
        .await
        .expect_err("kafka");
    assert_eq!(err.kind(), ErrorKind::Config);
    let why = if cfg!(feature = "kafka") {
        "partitions"
    } else {
        "`kafka` feature"
    };
    assert!(err.message().contains(why), "{err}");

    let err = Runtime::builder()
        .store_url("memory://")
        .cache(None)
        .worker_native("a", step("a"), WorkerSpec::default())
        .workflow(
            WorkflowDef::builder("w")
                .step(StepDef::new("s", "missing"))
                .build(),
        )
        .build()
        .await
        .expect_err("unknown worker");
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().contains("unknown worker \"missing\""), "{err}");

    // A component that is not WebAssembly: one error that names the worker,
    // said once (it was wrapped into "worker \"x\": worker \"x\" …: … \"x\" …").
    let err = Runtime::builder()
        .store_url("memory://")
        .cache(None)
        .worker_wasm("x", b"garbage".to_vec(), WorkerSpec::default())
        .build()
        .await
        .expect_err("not wasm");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let shown = err.to_string();
    assert!(shown.contains("worker \"x\" is not WebAssembly"), "{shown}");
    assert_eq!(shown.matches("not WebAssembly").count(), 1, "{shown}");
}

/// Shutdown leaves nothing running: the consumer loops, the handlers of
/// finished work, and a handler stuck in a worker past the deadline (given
/// up, its command handed back) are all gone when `shutdown` returns, and
/// the backends the runtime opened are closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_task_outlives_shutdown() {
    let alive = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let before = alive();
    let stuck = native(|_call: CallInfo, _input: Bytes| async move {
        std::future::pending::<()>().await;
        Ok(Bytes::new())
    });
    let rt = Runtime::builder()
        .worker_native("a", step("a"), WorkerSpec::default())
        .worker_native("stuck", stuck, WorkerSpec::default())
        .workflow(WorkflowDef::builder("quick").step(StepDef::new("a", "a")).build())
        .workflow(
            WorkflowDef::builder("hang")
                .step(StepDef::new("s", "stuck"))
                .build(),
        )
        .build()
        .await
        .expect("build");
    let done = rt.execute("quick", json!({})).await.expect("execute");
    assert_eq!(
        rt.wait(&done, Duration::from_secs(10))
            .await
            .expect("wait")
            .status,
        SagaStatus::Completed
    );
    let hung = rt.execute("hang", json!({})).await.expect("execute");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(alive() > before, "the runtime runs tasks");
    rt.shutdown(Duration::from_millis(200)).await.expect("shutdown");
    // A task that has ended leaves the runtime's count a moment later.
    for _ in 0..100 {
        if alive() == before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(alive(), before, "tasks left after shutdown");
    assert_eq!(rt.orchestrator().running_tasks(), 0);
    // The transport it opened is closed: nothing more goes out.
    let err = rt
        .transport()
        .publish(multiagents::Envelope::new("t", "k", Bytes::new()))
        .await;
    assert_eq!(err.expect_err("closed").kind(), ErrorKind::Closed);
    let _ = hung;
}
