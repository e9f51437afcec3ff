//! `Orchestrator::connect`: a client of the instances serving a backend
//! submits, reads, waits and cancels, but takes no work, on every backend.

use std::time::Duration;

use multiagents::ErrorKind;
use multiagents::orchestrator::{Orchestrator, OrchestratorConfig, SagaStatus};
use multiagents::workflow::{StepDef, WorkflowDef};
use serde_json::json;

use crate::backends::{Site, on_every_backend};
use multiagents_core::conformance::orchestrator::{Behave, Journal, rig_on};

on_every_backend!(a_client_takes_no_work_and_sees_what_the_servers_do);

fn ab() -> WorkflowDef {
    WorkflowDef::builder("ab")
        .step(StepDef::new("a", "a"))
        .step(StepDef::new("b", "b"))
        .build()
}

async fn a_client_takes_no_work_and_sees_what_the_servers_do(site: Site) {
    let (transport, store) = site.connect().await;
    let client = Orchestrator::connect(transport, store, OrchestratorConfig::default())
        .await
        .expect("connect");
    // Its workers live elsewhere: only the workflow's shape is checked.
    client.register_workflow(ab()).expect("workflow");
    let bad = WorkflowDef::builder("bad")
        .step(StepDef::new("x", "a"))
        .step(StepDef::new("x", "b"))
        .build();
    assert_eq!(
        client.register_workflow(bad).expect_err("duplicate step").kind(),
        ErrorKind::Config
    );

    let mut txs = Vec::new();
    for i in 0..5 {
        txs.push(client.execute("ab", json!({ "i": i })).await.expect("execute"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for tx in &txs {
        let snap = client.status(tx).await.expect("status");
        assert!(snap.status == SagaStatus::Running && snap.pending, "{snap:?}");
    }

    let journal = Journal::default();
    let (transport, store) = site.connect().await;
    let _server = rig_on(
        transport,
        store,
        &[("a", Behave::Ok), ("b", Behave::Ok)],
        vec![ab()],
        journal.clone(),
    )
    .await;
    for tx in &txs {
        let snap = client.wait(tx, Duration::from_secs(10)).await.expect("wait");
        assert_eq!(snap.status, SagaStatus::Completed, "{snap:?}");
        assert_eq!(journal.for_tx(tx), ["a", "b"]);
    }
    let err = client.cancel(&txs[0]).await.expect_err("already final");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(client.list(None, 10).await.expect("list").items.len(), 5);
}
