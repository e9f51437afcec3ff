//! Saga paths on one instance: success, compensation at every step, a
//! failing compensation, conditions, retries, step timeouts, cancel.

use std::time::Duration;

use serde_json::json;

use super::{Behave, Site, WAIT, abc, fast_retry, rig, workers_with};
use crate::ErrorKind;
use crate::orchestrator::SagaStatus;
use crate::workflow::{Condition, RetryPolicy, StepDef, WorkflowDef};

/// Every step runs once, in order; the output merges the input and each step's output.
pub async fn success_runs_every_step_in_order_and_merges_outputs(site: &dyn Site) {
    let r = rig(site, &workers_with("none"), vec![abc()]).await;
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

/// A failure at step i compensates exactly the steps before it, in reverse.
pub async fn failure_at_each_step_compensates_exactly_the_completed_steps_in_reverse(site: &dyn Site) {
    for (fail, expected, status) in [
        ("a", vec![], SagaStatus::Failed),
        ("b", vec!["a", "undo-a"], SagaStatus::Compensated),
        ("c", vec!["a", "b", "undo-b", "undo-a"], SagaStatus::Compensated),
    ] {
        // A fresh site per case: nothing of the previous case is left.
        let r = rig(&*site.fresh(None).await, &workers_with(fail), vec![abc()]).await;
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

/// A compensation that fails stops the unwinding: `CompensationFailed`.
pub async fn a_failing_compensation_ends_in_compensation_failed(site: &dyn Site) {
    let mut workers = workers_with("c");
    workers.retain(|(w, _)| *w != "undo-b");
    workers.push(("undo-b", Behave::Fail));
    let r = rig(site, &workers, vec![abc()]).await;
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

/// A CEL condition runs its step when true and records it skipped when false.
pub async fn conditions_take_the_true_and_the_false_branch(site: &dyn Site) {
    let wf = WorkflowDef::builder("gift")
        .step(StepDef::new("a", "a"))
        .step(StepDef::new("wrap", "b").when(Condition::parse("input.gift == true").expect("cel")))
        .step(StepDef::new("c", "c"))
        .build();
    let r = rig(site, &workers_with("none"), vec![wf]).await;
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

/// Retryable failures are retried up to the policy; exhausted retries compensate.
pub async fn retry_then_success_and_retries_exhausted(site: &dyn Site) {
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
        site,
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

/// A step over its timeout fails the attempt; its late result changes nothing.
pub async fn a_step_timeout_fails_the_attempt_and_the_late_result_is_dropped(site: &dyn Site) {
    let wf = WorkflowDef::builder("slow")
        .step(StepDef::new("a", "a").compensate_with("undo-a"))
        .step(
            StepDef::new("slow", "slow")
                .timeout(Duration::from_millis(100))
                .retry(RetryPolicy::none()),
        )
        .build();
    let r = rig(
        site,
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

/// Cancel mid-flight compensates what completed (the running step too once done).
pub async fn cancel_mid_flight_compensates_what_completed(site: &dyn Site) {
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
    let r = rig(site, &workers, vec![wf]).await;
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
