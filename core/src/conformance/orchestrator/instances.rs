//! Several instances and hostile deliveries: duplicated results, two
//! instances sharing the work, an instance gone mid-step, bad input.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::{Behave, Journal, Site, WAIT, abc, rig, rig_on, workers_with};
use crate::orchestrator::{SagaStatus, TransactionId};
use crate::workflow::{StepDef, WorkflowDef};
use crate::{Envelope, ErrorKind, Result, SubscribeMode, SubscribeOptions, Subscription, Transport};

/// A transport that delivers every result twice: duplicates must be dropped.
struct DuplicateResults(Arc<dyn Transport>);

#[async_trait]
impl Transport for DuplicateResults {
    fn capabilities(&self) -> crate::Capabilities {
        self.0.capabilities()
    }
    async fn publish(&self, e: Envelope) -> Result<()> {
        if e.topic.ends_with(".results") {
            self.0.publish(e.clone()).await?;
        }
        self.0.publish(e).await
    }
    async fn publish_batch(&self, es: Vec<Envelope>) -> Result<()> {
        for e in es {
            self.publish(e).await?;
        }
        Ok(())
    }
    async fn subscribe(&self, t: &str, m: SubscribeMode, o: SubscribeOptions) -> Result<Subscription> {
        self.0.subscribe(t, m, o).await
    }
}

/// Every result delivered twice: no step advances twice.
pub async fn duplicated_results_never_advance_a_step_twice(site: &dyn Site) {
    let (transport, store) = site.connect().await;
    let r = rig_on(
        Arc::new(DuplicateResults(transport)),
        store,
        &workers_with("c"),
        vec![abc()],
        Journal::default(),
    )
    .await;
    let mut txs = Vec::new();
    for _ in 0..20 {
        txs.push(r.orch.execute("abc", json!({})).await.expect("execute"));
    }
    for tx in &txs {
        let snap = r.orch.wait(tx, WAIT).await.expect("wait");
        assert_eq!(snap.status, SagaStatus::Compensated);
        assert_eq!(r.journal.for_tx(tx), ["a", "b", "undo-b", "undo-a"]);
    }
}

/// Two instances on one backend: 200 transactions, each step run once.
pub async fn two_instances_on_one_backend_run_each_step_once(site: &dyn Site) {
    let journal = Journal::default();
    let (transport, store) = site.connect().await;
    let one = rig_on(
        transport,
        store,
        &workers_with("none"),
        vec![abc()],
        journal.clone(),
    )
    .await;
    let (transport, store) = site.connect().await;
    let two = rig_on(
        transport,
        store,
        &workers_with("none"),
        vec![abc()],
        journal.clone(),
    )
    .await;
    let mut txs = Vec::new();
    for i in 0..200 {
        let orch = if i % 2 == 0 { &one.orch } else { &two.orch };
        txs.push(orch.execute("abc", json!({"i": i})).await.expect("execute"));
    }
    for tx in &txs {
        assert_eq!(
            two.orch.wait(tx, WAIT).await.expect("wait").status,
            SagaStatus::Completed
        );
    }
    let counts = journal.counts();
    assert_eq!(counts.len(), 600, "every (step, tx) ran");
    assert!(
        counts.values().all(|&n| n == 1),
        "a step ran twice: {:?}",
        counts.iter().find(|(_, n)| **n > 1)
    );
}

/// An instance gone while running a step: another resumes the transaction
/// after the ack timeout (the site's transport gets a 2 s one).
pub async fn a_runtime_dropped_mid_flight_is_resumed_by_another(site: &dyn Site) {
    let site = site.fresh(Some(Duration::from_secs(2))).await;
    let journal = Journal::default();
    let wf = || {
        WorkflowDef::builder("abc")
            .step(StepDef::new("a", "a"))
            .step(StepDef::new("b", "b").timeout(Duration::from_secs(30)))
            .step(StepDef::new("c", "c"))
            .build()
    };
    // Instance one is the only one serving "b", and "b" never returns there.
    let (transport, store) = site.connect().await;
    let one = rig_on(
        transport,
        store,
        &[("a", Behave::Ok), ("b", Behave::Stuck), ("c", Behave::Ok)],
        vec![wf()],
        journal.clone(),
    )
    .await;
    let tx = one.orch.execute("abc", json!({})).await.expect("execute");
    let started = tokio::time::timeout(WAIT, async {
        while journal.for_tx(&tx) != ["a", "b-started"] {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(started.is_ok(), "b never started: {:?}", journal.for_tx(&tx));
    one.orch.shutdown(Duration::ZERO).await;
    drop(one);
    let (transport, store) = site.connect().await;
    let two = rig_on(
        transport,
        store,
        &[("a", Behave::Ok), ("b", Behave::Ok), ("c", Behave::Ok)],
        vec![wf()],
        journal.clone(),
    )
    .await;
    let snap = two.orch.wait(&tx, WAIT).await.expect("resumed");
    assert_eq!(snap.status, SagaStatus::Completed, "{snap:?}");
    assert_eq!(journal.for_tx(&tx), ["a", "b-started", "b", "c"]);
}

/// Unknown workflows and transactions, bad and oversized input, unknown
/// workers: typed errors, and nothing accepted is lost meanwhile.
pub async fn bad_input_is_refused_with_typed_errors(site: &dyn Site) {
    let r = rig(site, &workers_with("none"), vec![abc()]).await;
    let err = r.orch.execute("nope", json!({})).await.expect_err("unknown");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.message().contains("unknown workflow \"nope\"") && err.message().contains("abc"),
        "{err}"
    );
    let err = r
        .orch
        .execute("abc", json!([1, 2]))
        .await
        .expect_err("not an object");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let big = json!({"blob": "x".repeat(2 << 20)});
    assert_eq!(
        r.orch.execute("abc", big).await.expect_err("too large").kind(),
        ErrorKind::TooLarge
    );
    let err = r
        .orch
        .cancel(&TransactionId::from("missing"))
        .await
        .expect_err("unknown tx");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        r.orch
            .status(&"missing".into())
            .await
            .expect_err("unknown")
            .kind(),
        ErrorKind::NotFound
    );
    let wf = WorkflowDef::builder("bad")
        .step(StepDef::new("x", "ghost"))
        .build();
    let err = r.orch.register_workflow(wf).expect_err("unknown worker");
    assert_eq!(err.kind(), ErrorKind::Config);
    // Nothing accepted was lost meanwhile.
    let tx = r.orch.execute("abc", json!({})).await.expect("execute");
    assert_eq!(
        r.orch.wait(&tx, WAIT).await.expect("wait").status,
        SagaStatus::Completed
    );
    let page = r.orch.list(None, 10).await.expect("list");
    assert_eq!(page.items.len(), 1);
}
