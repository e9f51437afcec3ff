//! Transitions and fencing of [`SagaState`], without a backend.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::workflow::{RetryPolicy, StepDef};

fn wf(queue_timeout: Option<Duration>) -> WorkflowDef {
    let mut a = StepDef::new("a", "wa").retry(RetryPolicy::attempts(2, Duration::from_millis(5)));
    if let Some(q) = queue_timeout {
        a = a.queue_timeout(q);
    }
    WorkflowDef::builder("w")
        .step(a)
        .step(StepDef::new("b", "wb"))
        .build()
}

fn started(wf: &WorkflowDef) -> (SagaState, Effects) {
    let mut state = SagaState::new(&TransactionId::from("t"), wf, json!({}), 1_000);
    let mut fx = Effects::over(0);
    state.start(wf, 1_000, &mut fx);
    (state, fx)
}

fn failed(attempt: u32, token: u64) -> StepResult {
    StepResult {
        tx: "t".into(),
        step: 0,
        kind: StepKind::Forward,
        attempt,
        outcome: Outcome::Err {
            kind: "unavailable".into(),
            retryable: true,
            message: "flaked".into(),
        },
        token,
        guard_due_ms: None,
        trace: None,
    }
}

#[test]
fn a_dispatch_is_fenced_by_its_write_s_basis_and_token() {
    let wf = wf(None);
    let (state, fx) = started(&wf);
    let cmd = &fx.commands[0];
    assert_eq!(
        (cmd.basis, cmd.timeout_ms, cmd.queue_deadline_ms),
        (0, 30_000, None)
    );
    assert!(fx.timers.is_empty(), "no queue timeout: no durable timer");
    let want = state.waiting.expect("waiting");
    assert_eq!(want.token, cmd.token);
    assert_ne!(cmd.token, 0);
    // Not written yet: early. Written (at any version): current.
    assert_eq!(Fence::judge(None, want, 0), Fence::Early);
    assert_eq!(Fence::judge(Some((state.waiting, 7)), want, 0), Fence::Current);

    // The state moves on over version 7: the old dispatch is stale.
    let mut next = state.clone();
    let mut fx = Effects::over(7);
    next.on_result(&wf, &failed(1, cmd.token), 2_000, &mut fx);
    assert_eq!(Fence::judge(Some((next.waiting, 9)), want, 0), Fence::Stale);
    let retry = &fx.timers[0];
    assert_eq!(
        (retry.basis, retry.attempt, retry.purpose),
        (7, 2, TimerPurpose::Retry)
    );
    let retry_wait = SagaState::timer_wait(retry);
    // Still at version 7 (the write with the timer not in yet): early.
    assert_eq!(
        Fence::judge(Some((state.waiting, 7)), retry_wait, 7),
        Fence::Early
    );
    assert_eq!(
        Fence::judge(Some((next.waiting, 9)), retry_wait, 7),
        Fence::Current
    );
    // Expired or deleted after the fact: stale, never early.
    assert_eq!(Fence::judge(None, retry_wait, 7), Fence::Stale);
}

#[test]
fn two_writers_racing_from_one_state_never_share_a_token() {
    let wf = wf(None);
    let (state, fx) = started(&wf);
    let token = fx.commands[0].token;
    let ok = StepResult {
        outcome: Outcome::Ok(vec![0xa0]),
        ..failed(1, token)
    };
    // Two handlers of one (duplicated) result, both over version 5.
    let (mut won, mut lost) = (state.clone(), state.clone());
    let (mut fx_won, mut fx_lost) = (Effects::over(5), Effects::over(5));
    won.on_result(&wf, &ok, 2_000, &mut fx_won);
    lost.on_result(&wf, &ok, 2_000, &mut fx_lost);
    let (a, b) = (&fx_won.commands[0], &fx_lost.commands[0]);
    assert_eq!((a.step, b.step, a.basis, b.basis), (1, 1, 5, 5));
    assert_ne!(a.token, b.token);
    // Only the winner's write landed: the loser's command is stale.
    let lost_wait = Waiting {
        step: 1,
        kind: StepKind::Forward,
        attempt: 1,
        stage: Stage::Running,
        token: b.token,
    };
    assert_eq!(Fence::judge(Some((won.waiting, 6)), lost_wait, 5), Fence::Stale);
    assert_eq!(
        Fence::judge(
            Some((won.waiting, 6)),
            Waiting {
                token: a.token,
                ..lost_wait
            },
            5
        ),
        Fence::Current
    );
}

#[test]
fn a_retry_timer_dispatches_once_and_a_duplicate_is_stale() {
    let wf = wf(None);
    let (mut state, first) = started(&wf);
    let first = first.commands[0].token;
    let mut fx = Effects::over(3);
    state.on_result(&wf, &failed(1, first), 2_000, &mut fx);
    let timer = fx.timers.remove(0);
    let mut fx = Effects::over(4);
    assert!(state.on_timer(&wf, &timer, 3_000, &mut fx));
    let second = &fx.commands[0];
    assert_eq!((second.attempt, second.basis), (2, 4));
    let mut again = Effects::over(5);
    assert!(
        !state.on_timer(&wf, &timer, 3_001, &mut again),
        "the same timer twice"
    );
    assert!(again.commands.is_empty());
    // A result of the superseded attempt 1 is not expected any more.
    assert!(!state.expects(0, StepKind::Forward, 1, Stage::Running, first));
    assert!(state.expects(0, StepKind::Forward, 2, Stage::Running, second.token));
}

#[test]
fn a_queue_timeout_adds_a_deadline_and_a_durable_guard() {
    let wf = wf(Some(Duration::from_millis(100)));
    let (state, fx) = started(&wf);
    assert_eq!(fx.commands[0].queue_deadline_ms, Some(1_100));
    let guard = &fx.timers[0];
    assert_eq!(guard.purpose, TimerPurpose::Timeout);
    assert_eq!(guard.due_ms, 1_000 + 100 + 30_000 + QUEUE_GUARD_SLACK_MS);
    let mut fired = state.clone();
    let mut fx = Effects::over(2);
    assert!(fired.on_timer(&wf, guard, guard.due_ms, &mut fx));
    assert_eq!(fired.waiting.map(|w| w.stage), Some(Stage::Backoff), "retried");
    assert!(fx.events.iter().any(|e| e.name == "step.timed_out"));
}

#[test]
fn a_timeout_result_is_recorded_as_a_timeout() {
    let wf = wf(None);
    let (mut state, fx) = started(&wf);
    let r = StepResult {
        outcome: Outcome::Err {
            kind: "timeout".into(),
            retryable: true,
            message: "no result within the step timeout of 30s".into(),
        },
        ..failed(1, fx.commands[0].token)
    };
    let mut fx = Effects::over(1);
    state.on_result(&wf, &r, 2_000, &mut fx);
    assert_eq!(state.history[0].outcome.as_deref(), Some("timeout"));
    assert!(fx.events.iter().any(|e| e.name == "step.timed_out"));
    assert_eq!(
        state.waiting.map(|w| (w.attempt, w.stage)),
        Some((2, Stage::Backoff))
    );
}

/// The guard of a step `a`'s result, reported at `due`, and where the
/// in-process dispatch of `b` at 2 000 (slack 9 000) puts its guard.
fn guard_after(due: Option<u64>) -> (Option<u64>, Option<Deadline>) {
    let wf = wf(None);
    let placement = Placement {
        run_here: std::sync::Arc::new(|_: &str| true),
        guard_slack_ms: 9_000,
        renewed: true,
    };
    let mut state = SagaState::new(&TransactionId::from("t"), &wf, json!({}), 1_000);
    let mut fx = Effects::over(0);
    fx.placement = Some(placement.clone());
    state.start(&wf, 1_000, &mut fx);
    assert_eq!(state.deadline.map(|d| d.due_ms), Some(10_000));
    let ok = StepResult {
        outcome: Outcome::Ok(vec![0xa0]),
        guard_due_ms: due,
        ..failed(1, fx.local[0].token)
    };
    let mut fx = Effects::over(1);
    fx.placement = Some(placement);
    state.on_result(&wf, &ok, 2_000, &mut fx);
    assert_eq!(fx.local.len(), 1, "b runs in-process");
    (fx.local[0].guard_due_ms, state.deadline)
}

#[test]
fn an_in_process_step_keeps_a_guard_with_five_sixths_of_the_slack_left() {
    let kept = Deadline {
        due_ms: 10_000,
        purpose: TimerPurpose::Guard,
    };
    // Unchanged deadline: the write keeps the timer.
    assert_eq!(guard_after(Some(10_000)), (Some(10_000), Some(kept)));
    // Renewed by a's runner: b's guard goes where it stands.
    assert_eq!(guard_after(Some(10_500)).0, Some(10_500));
    // Exactly five sixths left is enough; less is not.
    assert_eq!(guard_after(Some(9_500)).0, Some(9_500));
    assert_eq!(guard_after(Some(9_499)).0, Some(11_000));
    // Unknown (a queued result, or a failed renewal): a fresh slack.
    assert_eq!(guard_after(None).0, Some(11_000));
    // Past a fresh slack cannot be where the guard stands: fresh.
    assert_eq!(guard_after(Some(11_001)).0, Some(11_000));
}
