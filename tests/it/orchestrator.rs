//! Every saga path, with native workers that record what ran (their side
//! effects), on every backend (`memory::…`, `redis::…`, `mixed::…`; see
//! `backends.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use multiagents::orchestrator::{Orchestrator, OrchestratorConfig, SagaStatus, TransactionId};
use multiagents::resilience::GuardConfig;
use multiagents::worker::{CallInfo, WorkerHost, WorkerSpec, fatal, native, retryable};
use multiagents::workflow::{Condition, RetryPolicy, StepDef, WorkflowDef};
use multiagents::{
    Envelope, ErrorKind, Result, StateStore, SubscribeMode, SubscribeOptions, Subscription, Transport,
};
use serde_json::{Value, json};

use crate::backends::{Site, on_every_backend};

on_every_backend!(
    success_runs_every_step_in_order_and_merges_outputs,
    failure_at_each_step_compensates_exactly_the_completed_steps_in_reverse,
    a_failing_compensation_ends_in_compensation_failed,
    conditions_take_the_true_and_the_false_branch,
    retry_then_success_and_retries_exhausted,
    a_step_timeout_fails_the_attempt_and_the_late_result_is_dropped,
    cancel_mid_flight_compensates_what_completed,
    duplicated_results_never_advance_a_step_twice,
    two_instances_on_one_backend_run_each_step_once,
    a_runtime_dropped_mid_flight_is_resumed_by_another,
    bad_input_is_refused_with_typed_errors,
);

/// What ran, in order: `"<worker>:<tx>"`.
#[derive(Clone, Default)]
pub(crate) struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn push(&self, s: String) {
        self.0.lock().expect("journal").push(s);
    }
    pub(crate) fn for_tx(&self, tx: &TransactionId) -> Vec<String> {
        let suffix = format!(":{tx}");
        self.0
            .lock()
            .expect("journal")
            .iter()
            .filter(|e| e.ends_with(&suffix))
            .map(|e| e.trim_end_matches(&suffix).to_string())
            .collect()
    }
    pub(crate) fn counts(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for e in self.0.lock().expect("journal").iter() {
            *m.entry(e.clone()).or_default() += 1;
        }
        m
    }
}

/// How a test worker behaves.
#[derive(Clone, Copy)]
pub(crate) enum Behave {
    /// Returns `{"<name>": true}`.
    Ok,
    /// Fatal error.
    Fail,
    /// Retryable error for the first `n` attempts, then ok.
    FlakyUntil(u32),
    /// Sleeps, then ok.
    Slow(u64),
    /// Records `"<name>-started"`, then never returns (a worker stuck
    /// inside an instance that goes away).
    Stuck,
}

fn cbor(v: &Value) -> Bytes {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("cbor");
    out.into()
}

pub(crate) fn register(host: &WorkerHost, journal: &Journal, name: &'static str, how: Behave) {
    let journal = journal.clone();
    let worker = native(move |call: CallInfo, _input: Bytes| {
        let journal = journal.clone();
        async move {
            match how {
                Behave::Ok => {}
                Behave::Fail => return Err(fatal(format!("{name} says no"))),
                Behave::FlakyUntil(n) if call.attempt <= n => {
                    return Err(retryable(format!("{name} flaked")));
                }
                Behave::FlakyUntil(_) => {}
                Behave::Slow(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Behave::Stuck => {
                    journal.push(format!("{name}-started:{}", call.transaction_id));
                    std::future::pending::<()>().await;
                }
            }
            journal.push(format!("{name}:{}", call.transaction_id));
            Ok(cbor(&json!({ name: true })))
        }
    });
    let guard = GuardConfig::default().with_breaker(None);
    host.register_native(name, worker, WorkerSpec::default().with_guard(guard))
        .expect("register");
}

fn fast_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy::attempts(attempts, Duration::from_millis(5)).without_jitter()
}

pub(crate) struct Rig {
    pub(crate) orch: Orchestrator,
    pub(crate) journal: Journal,
}

pub(crate) async fn rig_on(
    transport: Arc<dyn Transport>,
    store: Arc<dyn StateStore>,
    workers: &[(&'static str, Behave)],
    workflows: Vec<WorkflowDef>,
    journal: Journal,
) -> Rig {
    let host = WorkerHost::builder().build().expect("host");
    for (name, how) in workers {
        register(&host, &journal, name, *how);
    }
    let orch = Orchestrator::start(transport, store, host, OrchestratorConfig::default())
        .await
        .expect("start");
    for wf in workflows {
        orch.register_workflow(wf).expect("workflow");
    }
    Rig { orch, journal }
}

/// A rig on a new connection to `site`.
async fn rig(site: &Site, workers: &[(&'static str, Behave)], workflows: Vec<WorkflowDef>) -> Rig {
    let (transport, store) = site.connect().await;
    rig_on(transport, store, workers, workflows, Journal::default()).await
}

/// a (undo-a) → b (undo-b) → c (undo-c)
fn abc() -> WorkflowDef {
    WorkflowDef::builder("abc")
        .step(
            StepDef::new("a", "a")
                .compensate_with("undo-a")
                .retry(fast_retry(1)),
        )
        .step(
            StepDef::new("b", "b")
                .compensate_with("undo-b")
                .retry(fast_retry(1)),
        )
        .step(
            StepDef::new("c", "c")
                .compensate_with("undo-c")
                .retry(fast_retry(1)),
        )
        .build()
}

fn workers_with(fail: &str) -> Vec<(&'static str, Behave)> {
    ["a", "b", "c", "undo-a", "undo-b", "undo-c"]
        .into_iter()
        .map(|w| (w, if w == fail { Behave::Fail } else { Behave::Ok }))
        .collect()
}

const WAIT: Duration = Duration::from_secs(10);

async fn success_runs_every_step_in_order_and_merges_outputs(site: Site) {
    let r = rig(&site, &workers_with("none"), vec![abc()]).await;
    let tx = r
        .orch
        .execute("abc", json!({"order": "o-1"}))
        .await
        .expect("execute");
    let snap = r.orch.wait(&tx, WAIT).await.expect("wait");
    assert_eq!(snap.status, SagaStatus::Completed, "{snap:?}");
    assert_eq!(r.journal.for_tx(&tx), ["a", "b", "c"]);
    assert_eq!(
        snap.output,
        Some(json!({"order": "o-1", "a": true, "b": true, "c": true}))
    );
    assert_eq!(snap.history.len(), 3);
    assert!(
        snap.history
            .iter()
            .all(|h| h.outcome.as_deref() == Some("ok") && h.finished_ms.is_some())
    );
}

async fn failure_at_each_step_compensates_exactly_the_completed_steps_in_reverse(site: Site) {
    for (fail, expected, status) in [
        ("a", vec![], SagaStatus::Failed),
        ("b", vec!["a", "undo-a"], SagaStatus::Compensated),
        ("c", vec!["a", "b", "undo-b", "undo-a"], SagaStatus::Compensated),
    ] {
        // A fresh site per case: nothing of the previous case is left.
        let r = rig(&site.fresh(), &workers_with(fail), vec![abc()]).await;
        let tx = r.orch.execute("abc", json!({})).await.expect("execute");
        let snap = r.orch.wait(&tx, WAIT).await.expect("wait");
        assert_eq!(snap.status, status, "failing {fail}: {snap:?}");
        assert_eq!(r.journal.for_tx(&tx), expected, "failing {fail}");
        let error = snap.error.expect("error recorded");
        assert!(
            error.contains(&format!("step \"{fail}\" failed")) && error.contains("says no"),
            "{error}"
        );
    }
}

async fn a_failing_compensation_ends_in_compensation_failed(site: Site) {
    let mut workers = workers_with("c");
    workers.retain(|(w, _)| *w != "undo-b");
    workers.push(("undo-b", Behave::Fail));
    let r = rig(&site, &workers, vec![abc()]).await;
    let tx = r.orch.execute("abc", json!({})).await.expect("execute");
    let snap = r.orch.wait(&tx, WAIT).await.expect("wait");
    assert_eq!(snap.status, SagaStatus::CompensationFailed, "{snap:?}");
    assert_eq!(
        r.journal.for_tx(&tx),
        ["a", "b"],
        "undo-a must not run after undo-b failed"
    );
    assert!(
        snap.error
            .expect("error")
            .contains("compensation of step \"b\" failed")
    );
}

async fn conditions_take_the_true_and_the_false_branch(site: Site) {
    let wf = WorkflowDef::builder("gift")
        .step(StepDef::new("a", "a"))
        .step(StepDef::new("wrap", "b").when(Condition::parse("input.gift == true").expect("cel")))
        .step(StepDef::new("c", "c"))
        .build();
    let r = rig(&site, &workers_with("none"), vec![wf]).await;
    let yes = r
        .orch
        .execute("gift", json!({"gift": true}))
        .await
        .expect("execute");
    let no = r
        .orch
        .execute("gift", json!({"gift": false}))
        .await
        .expect("execute");
    assert_eq!(
        r.orch.wait(&yes, WAIT).await.expect("wait").status,
        SagaStatus::Completed
    );
    let snap = r.orch.wait(&no, WAIT).await.expect("wait");
    assert_eq!(snap.status, SagaStatus::Completed);
    assert_eq!(r.journal.for_tx(&yes), ["a", "b", "c"]);
    assert_eq!(r.journal.for_tx(&no), ["a", "c"]);
    assert!(
        snap.history
            .iter()
            .any(|h| h.step == "wrap" && h.outcome.as_deref() == Some("skipped"))
    );
}

async fn retry_then_success_and_retries_exhausted(site: Site) {
    let wf = |name: &str, worker: &str| {
        WorkflowDef::builder(name)
            .step(StepDef::new("a", "a").compensate_with("undo-a"))
            .step(StepDef::new("flaky", worker).retry(fast_retry(3)))
            .build()
    };
    let workers = [
        ("a", Behave::Ok),
        ("undo-a", Behave::Ok),
        ("twice", Behave::FlakyUntil(2)),
        ("always", Behave::FlakyUntil(99)),
    ];
    let r = rig(
        &site,
        &workers,
        vec![wf("ok-on-3", "twice"), wf("never", "always")],
    )
    .await;
    let tx = r.orch.execute("ok-on-3", json!({})).await.expect("execute");
    let snap = r.orch.wait(&tx, WAIT).await.expect("wait");
    assert_eq!(snap.status, SagaStatus::Completed, "{snap:?}");
    let attempts: Vec<u32> = snap
        .history
        .iter()
        .filter(|h| h.step == "flaky")
        .map(|h| h.attempt)
        .collect();
    assert_eq!(attempts, [1, 2, 3]);

    let tx = r.orch.execute("never", json!({})).await.expect("execute");
    let snap = r.orch.wait(&tx, WAIT).await.expect("wait");
    assert_eq!(snap.status, SagaStatus::Compensated, "{snap:?}");
    assert_eq!(r.journal.for_tx(&tx), ["a", "undo-a"]);
    assert!(snap.error.expect("error").contains("after 3 attempt(s)"));
}

async fn a_step_timeout_fails_the_attempt_and_the_late_result_is_dropped(site: Site) {
    let wf = WorkflowDef::builder("slow")
        .step(StepDef::new("a", "a").compensate_with("undo-a"))
        .step(
            StepDef::new("slow", "slow")
                .timeout(Duration::from_millis(100))
                .retry(RetryPolicy::none()),
        )
        .build();
    let r = rig(
        &site,
        &[
            ("a", Behave::Ok),
            ("undo-a", Behave::Ok),
            ("slow", Behave::Slow(400)),
        ],
        vec![wf],
    )
    .await;
    let tx = r.orch.execute("slow", json!({})).await.expect("execute");
    let snap = r.orch.wait(&tx, WAIT).await.expect("wait");
    assert_eq!(snap.status, SagaStatus::Compensated, "{snap:?}");
    assert!(
        snap.error.as_deref().is_some_and(|e| e.contains("timeout")),
        "{snap:?}"
    );
    assert!(
        snap.history
            .iter()
            .any(|h| h.step == "slow" && h.outcome.as_deref() == Some("timeout"))
    );
    // The slow worker's result arrives later and must change nothing.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = r.orch.status(&tx).await.expect("status");
    assert_eq!(
        (after.status, after.history.len()),
        (snap.status, snap.history.len())
    );
}

async fn cancel_mid_flight_compensates_what_completed(site: Site) {
    let wf = WorkflowDef::builder("long")
        .step(StepDef::new("a", "a").compensate_with("undo-a"))
        .step(StepDef::new("slow", "slow").compensate_with("undo-b"))
        .step(StepDef::new("c", "c"))
        .build();
    let workers = [
        ("a", Behave::Ok),
        ("undo-a", Behave::Ok),
        ("slow", Behave::Slow(300)),
        ("undo-b", Behave::Ok),
        ("c", Behave::Ok),
    ];
    let r = rig(&site, &workers, vec![wf]).await;
    let tx = r.orch.execute("long", json!({})).await.expect("execute");
    // Wait until "slow" is running, then cancel.
    for _ in 0..200 {
        if r.orch.status(&tx).await.expect("status").current_step.as_deref() == Some("slow") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    r.orch.cancel(&tx).await.expect("cancel");
    let snap = r.orch.wait(&tx, WAIT).await.expect("wait");
    assert_eq!(snap.status, SagaStatus::Cancelled, "{snap:?}");
    // The running step finished, so it is undone too; "c" never ran.
    assert_eq!(r.journal.for_tx(&tx), ["a", "slow", "undo-b", "undo-a"]);
    let err = r.orch.cancel(&tx).await.expect_err("already final");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("already finished (cancelled)"), "{err}");
}

/// A transport that delivers every result twice: duplicates must be dropped.
struct DuplicateResults(Arc<dyn Transport>);

#[async_trait]
impl Transport for DuplicateResults {
    fn capabilities(&self) -> multiagents::Capabilities {
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

async fn duplicated_results_never_advance_a_step_twice(site: Site) {
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

/// Two instances, each with its own connections to the site (as two
/// processes would have).
async fn two_instances_on_one_backend_run_each_step_once(site: Site) {
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

/// Instance one takes step "b" and goes away while running it; the
/// command is redelivered (after the ack timeout) to instance two, which
/// finishes the transaction.
async fn a_runtime_dropped_mid_flight_is_resumed_by_another(site: Site) {
    let site = site.with_ack_timeout(Duration::from_secs(2));
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

async fn bad_input_is_refused_with_typed_errors(site: Site) {
    let r = rig(&site, &workers_with("none"), vec![abc()]).await;
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
