//! The timers kept with the state, on every backend: a step run in-process
//! renews its guard while it runs, so a long step runs once; and a
//! finished transaction leaves no timer behind (its last write clears it;
//! counted where the store keeps timers).

use std::time::Duration;

use multiagents::orchestrator::{Orchestrator, OrchestratorConfig, SagaStatus};
use multiagents::worker::WorkerHost;
use multiagents::workflow::{RetryPolicy, StepDef, WorkflowDef};
use serde_json::json;

use crate::backends::{Site, on_every_backend};
use crate::under_load::{Act, Runs, register};

on_every_backend!(
    a_step_longer_than_its_guard_slack_renews_it_and_runs_once,
    finished_transactions_leave_no_timer,
);

async fn a_step_longer_than_its_guard_slack_renews_it_and_runs_once(site: Site) {
    let (transport, store) = site.connect().await;
    let runs = Runs::default();
    let host = WorkerHost::builder().build().expect("host");
    register(&host, &runs, "long", Act::Sleep(Duration::from_millis(1500)));
    let config = OrchestratorConfig::default().with_guard_slack(Duration::from_millis(300));
    let orch = Orchestrator::start(transport, store, host, config)
        .await
        .expect("start");
    let wf = WorkflowDef::builder("long")
        .step(StepDef::new("first", "long").timeout(Duration::from_secs(10)))
        .step(StepDef::new("second", "long").timeout(Duration::from_secs(10)))
        .build();
    orch.register_workflow(wf).expect("workflow");
    let tx = orch.execute("long", json!({})).await.expect("execute");
    let snap = orch.wait(&tx, Duration::from_secs(20)).await.expect("wait");
    assert_eq!(snap.status, SagaStatus::Completed, "{snap:?}");
    assert_eq!(
        runs.count("long", &tx),
        2,
        "each 1.5 s step ran once under a 300 ms guard slack (renewed): {:?}",
        snap.history
    );
    assert!(
        snap.history.iter().all(|h| h.outcome.as_deref() == Some("ok")),
        "{:?}",
        snap.history
    );
    orch.shutdown(Duration::from_secs(1)).await;
}

async fn finished_transactions_leave_no_timer(site: Site) {
    let (transport, store) = site.connect().await;
    // A store without timers (NATS) keeps them on the transport instead:
    // the transactions must still finish; there is no timer set to count.
    let sched = store.scheduler();
    let runs = Runs::default();
    let host = WorkerHost::builder().build().expect("host");
    register(&host, &runs, "flaky", Act::FlakyOneIn(2));
    register(&host, &runs, "ok", Act::Ok);
    let orch = Orchestrator::start(transport, store, host, OrchestratorConfig::default())
        .await
        .expect("start");
    let retry = RetryPolicy::attempts(3, Duration::from_millis(20)).without_jitter();
    let wf = WorkflowDef::builder("timed")
        .step(StepDef::new("flaky", "flaky").retry(retry))
        .step(StepDef::new("queued", "ok").queue_timeout(Duration::from_secs(30)))
        .step(StepDef::new("last", "ok"))
        .build();
    orch.register_workflow(wf).expect("workflow");
    let mut txs = Vec::new();
    for i in 0..40 {
        txs.push(orch.execute("timed", json!({ "i": i })).await.expect("execute"));
    }
    let mut retried = 0;
    for tx in &txs {
        let snap = orch.wait(tx, Duration::from_secs(20)).await.expect("wait");
        assert_eq!(snap.status, SagaStatus::Completed, "{snap:?}");
        retried += snap.history.iter().filter(|h| h.attempt == 2).count();
    }
    assert_eq!(retried, 20, "one transaction in two retried its first step");
    match sched {
        Some(sched) => {
            let left = sched.pending("ma").await.expect("pending");
            assert_eq!(left, 0, "{left} timers left after every transaction finished");
        }
        None => multiagents_core::conformance::skip(
            "finished_transactions_leave_no_timer (the count of timers left)",
            &format!("{:?}", site.backend()),
            "store timers",
        ),
    }
    orch.shutdown(Duration::from_secs(1)).await;
}
