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

/// On Kafka the owner of a store partition claims its timers. An instance
/// with no workflow advances nothing, so it opens its store as a client's
/// and owns no partition: every timer is claimed by the instance that
/// knows the workflow. Here every transaction waits on a retry timer (its
/// step `a` fails the first attempt), with a b-only instance running
/// beside the one that knows the workflow.
#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_kafka_a_steps_only_instance_leaves_no_timer_unclaimed() {
    use multiagents::workflow::RetryPolicy;
    let Some(url) = crate::support::fresh_namespace("KAFKA_URL", "prefix", "spread") else {
        return;
    };
    crate::support::logs();
    let flaky = native(|call: CallInfo, _i: Bytes| async move {
        if call.attempt <= 1 {
            return Err(multiagents::worker::retryable("the first attempt fails"));
        }
        Ok(Bytes::from_static(&[0xa0]))
    });
    let retried = WorkflowDef::builder("retried")
        .step(
            StepDef::new("a", "a")
                .retry(RetryPolicy::attempts(3, Duration::from_millis(200)).without_jitter()),
        )
        .step(StepDef::new("b", "b"))
        .build();
    let main = Runtime::builder()
        .transport_url(&url)
        .store_url(&url)
        // No breaker: eight first attempts failing in a row would open it.
        .worker_native(
            "a",
            flaky,
            WorkerSpec::default().with_guard(GuardConfig::default().with_breaker(None)),
        )
        .worker_native("b", counted(Arc::default(), 0), WorkerSpec::default())
        .workflow(retried)
        .build()
        .await
        .expect("main instance");
    let extra = Runtime::builder()
        .transport_url(&url)
        .store_url(&url)
        .worker_native("b", counted(Arc::default(), 0), WorkerSpec::default())
        .build()
        .await
        .expect("the b-only instance");
    let mut txs = Vec::new();
    for i in 0..8 {
        txs.push(main.execute("retried", json!({ "i": i })).await.expect("execute"));
    }
    for tx in &txs {
        let done = match main.wait(tx, Duration::from_secs(60)).await {
            Ok(done) => done,
            Err(e) => panic!("{e}; now: {:?}", main.status(tx).await),
        };
        assert_eq!(done.status, SagaStatus::Completed, "{done:?}");
    }
    extra.shutdown(Duration::from_secs(2)).await.expect("shutdown");
    main.shutdown(Duration::from_secs(2)).await.expect("shutdown");
}
