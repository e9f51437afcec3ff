//! Work spreads across instances: a step this instance cannot take now
//! (no free permit) goes to the queue, and an instance that serves only
//! that step's worker, with no workflow of its own, runs its share; the
//! results it sends are advanced by the instances that know the workflow.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use multiagents::Runtime;
use multiagents::orchestrator::SagaStatus;
use multiagents::resilience::GuardConfig;
use multiagents::worker::{CallInfo, WorkerSpec, native};
use multiagents::workflow::{StepDef, WorkflowDef};
use serde_json::json;

fn workflow() -> WorkflowDef {
    WorkflowDef::builder("spread")
        .step(StepDef::new("a", "a"))
        .step(StepDef::new("b", "b"))
        .step(StepDef::new("c", "c"))
        .build()
}

/// A worker that counts its runs; `b` takes a while.
fn counted(runs: Arc<AtomicUsize>, ms: u64) -> impl multiagents::worker::Worker {
    native(move |_c: CallInfo, _i: Bytes| {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(Bytes::from_static(&[0xa0]))
        }
    })
}

crate::backends::on_every_backend!(a_worker_served_by_only_some_instances_gets_its_share);

async fn a_worker_served_by_only_some_instances_gets_its_share(site: crate::backends::Site) {
    let one = WorkerSpec::default().with_guard(GuardConfig::default().with_max_concurrent(1));
    let (main_b, extra_b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (t1, s1) = site.connect().await;
    let main = Runtime::builder()
        .transport(t1)
        .store(s1)
        .worker_native("a", counted(Arc::default(), 0), WorkerSpec::default())
        .worker_native("b", counted(main_b.clone(), 50), one.clone())
        .worker_native("c", counted(Arc::default(), 0), WorkerSpec::default())
        .workflow(workflow())
        .build()
        .await
        .expect("main instance");
    // Serves `b` only: no workflow, no other worker.
    let (t2, s2) = site.connect().await;
    let extra = Runtime::builder()
        .transport(t2)
        .store(s2)
        .worker_native("b", counted(extra_b.clone(), 50), one)
        .build()
        .await
        .expect("the b-only instance");
    let mut txs = Vec::new();
    for _ in 0..12 {
        txs.push(main.execute("spread", json!({})).await.expect("execute"));
    }
    for tx in &txs {
        let done = main.wait(tx, Duration::from_secs(30)).await.expect("completes");
        assert_eq!(done.status, SagaStatus::Completed, "{done:?}");
    }
    let (here, there) = (main_b.load(Ordering::SeqCst), extra_b.load(Ordering::SeqCst));
    assert_eq!(
        here + there,
        12,
        "each b ran once: {here} here, {there} on the b-only instance"
    );
    assert!(there > 0, "the b-only instance ran none of the 12 b steps");
    extra.shutdown(Duration::from_secs(2)).await.expect("shutdown");
    main.shutdown(Duration::from_secs(2)).await.expect("shutdown");
}
