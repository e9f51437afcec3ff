//! Killed between any two effects, a transaction still completes.
//!
//! Instance A serves a three-step workflow (the first step queued, as a
//! client submits it; the next two run in-process, guarded by timers) on a
//! backend it shares with a client and, later, instance B. A fuse
//! (`fuse.rs`) kills A after its k-th effect, for every k from 0 to the
//! number of effects an uninterrupted run takes; A is then aborted and B
//! started. Every transaction completes. Without a crash each step runs
//! once; with one, at least once.

use std::sync::Arc;
use std::time::Duration;

use multiagents::orchestrator::{Orchestrator, OrchestratorConfig, SagaStatus, TransactionId};
use multiagents::worker::WorkerHost;
use multiagents::workflow::{StepDef, WorkflowDef};
use multiagents::{StateStore, Transport};
use serde_json::json;

use crate::backends::{Site, on_every_backend};
use crate::fuse::{Fuse, FusedStore, FusedTransport};
use crate::under_load::{Act, Runs, register};

on_every_backend!(killed_between_any_two_effects_a_transaction_completes);

const STEPS: [&str; 3] = ["a", "b", "c"];
const SLACK: Duration = Duration::from_millis(300);

fn workflow() -> WorkflowDef {
    let mut b = WorkflowDef::builder("abc");
    for s in STEPS {
        b = b.step(StepDef::new(s, s).timeout(Duration::from_secs(5)));
    }
    b.build()
}

async fn instance(transport: Arc<dyn Transport>, store: Arc<dyn StateStore>, runs: &Runs) -> Orchestrator {
    let host = WorkerHost::builder().build().expect("host");
    for s in STEPS {
        register(&host, runs, s, Act::Ok);
    }
    let config = OrchestratorConfig::default().with_guard_slack(SLACK);
    let orch = Orchestrator::start(transport, store, host, config)
        .await
        .expect("start");
    orch.register_workflow(workflow()).expect("workflow");
    orch
}

/// One run with A killed after `allowed` effects; returns the effects A
/// made and the runs of each step.
async fn run(site: &Site, allowed: u64) -> (u64, Vec<u32>) {
    let (transport, store) = site.connect().await;
    let fuse = Fuse::new(allowed);
    let runs = Runs::default();
    let a = instance(
        Arc::new(FusedTransport(transport.clone(), fuse.clone())),
        Arc::new(FusedStore(store.clone(), fuse.clone())),
        &runs,
    )
    .await;
    let config = OrchestratorConfig::default();
    let client = Orchestrator::connect(transport.clone(), store.clone(), config)
        .await
        .expect("client");
    client.register_workflow(workflow()).expect("workflow");
    let tx: TransactionId = client.execute("abc", json!({})).await.expect("execute");

    // Until A dies or the transaction is done.
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let done = client.status(&tx).await.expect("status").status.is_final();
        if done || fuse.dead() {
            // Let the last allowed effect land.
            tokio::time::sleep(Duration::from_millis(50)).await;
            break;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "k={allowed}: neither done nor dead after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.shutdown(Duration::ZERO).await;
    let effects = fuse.effects();

    let b = instance(transport, store, &runs).await;
    let snap = client
        .wait(&tx, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("k={allowed}: not done 30 s after A was killed: {e}"));
    assert_eq!(snap.status, SagaStatus::Completed, "k={allowed}: {snap:?}");
    b.shutdown(Duration::from_secs(1)).await;
    client.shutdown(Duration::from_secs(1)).await;
    let counts = STEPS.iter().map(|s| runs.count(s, &tx)).collect();
    (effects, counts)
}

async fn killed_between_any_two_effects_a_transaction_completes(site: Site) {
    let site = site.with_ack_timeout(Duration::from_millis(500));
    let (total, once) = run(&site.fresh(), u64::MAX).await;
    assert_eq!(once, [1, 1, 1], "without a crash each step runs once");
    assert!(total >= 6, "an uninterrupted run took only {total} effects");
    let mut again = 0;
    for k in 0..total {
        let (_, counts) = run(&site.fresh(), k).await;
        assert!(
            counts.iter().all(|&n| n >= 1),
            "k={k}: a step never ran: {counts:?}"
        );
        again += counts.iter().map(|n| n - 1).sum::<u32>();
    }
    eprintln!(
        "{:?}: killed after each of {total} effects; all completed; {again} step runs repeated in all",
        site.backend()
    );
}
