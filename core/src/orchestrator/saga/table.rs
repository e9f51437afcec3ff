//! The saga's transitions as a table: (state, input) → (state, effects).
//! Each row starts from a state reached by earlier inputs, applies one
//! input, and checks the status, what the state waits for, its timer, and
//! the effects (queued commands, in-process steps, timer messages, events).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::workflow::{RetryPolicy, StepDef};

/// a (undone by undo-a, 2 attempts) → b (1 attempt); one step of 60 s.
fn wf() -> WorkflowDef {
    let retry = RetryPolicy::attempts(2, Duration::from_millis(100)).without_jitter();
    WorkflowDef::builder("w")
        .step(
            StepDef::new("a", "wa")
                .compensate_with("undo-a")
                .retry(retry)
                .timeout(Duration::from_secs(60)),
        )
        .step(StepDef::new("b", "wb").retry(RetryPolicy::attempts(1, Duration::ZERO)))
        .build()
}

#[derive(Clone, Copy, Debug)]
enum Input {
    Start,
    /// The result of what the state waits for.
    Ok,
    Retryable,
    Fatal,
    /// The timer of the state's deadline fires.
    Timer,
    Cancel,
    HandOver,
}

/// Runs `inputs` from a new state (`here`: steps may run in-process) and
/// returns the state and the effects of the last input.
fn after(inputs: &[Input], here: bool) -> (SagaState, Effects) {
    let wf = wf();
    let mut state = SagaState::new(&TransactionId::from("t"), &wf, json!({}), 1_000);
    let mut fx = Effects::over(0);
    let mut now = 1_000;
    for (i, input) in inputs.iter().enumerate() {
        now += 1_000;
        fx = Effects::over(i as u64 + 1);
        if here {
            fx.placement = Some(Placement {
                run_here: Arc::new(|_: &str| true),
                guard_slack_ms: 10_000,
                renewed: true,
            });
        }
        let waiting = state.waiting;
        let result = |outcome: Outcome| {
            let w = waiting.expect("a result needs a wait");
            StepResult {
                tx: "t".into(),
                step: w.step,
                kind: w.kind,
                attempt: w.attempt,
                outcome,
                token: w.token,
                guard_due_ms: None,
                trace: None,
            }
        };
        let err = |retryable: bool| Outcome::Err {
            kind: "unavailable".into(),
            retryable,
            message: "no".into(),
        };
        match input {
            Input::Start => state.start(&wf, now, &mut fx),
            Input::Ok => state.on_result(&wf, &result(Outcome::Ok(vec![0xa0])), now, &mut fx),
            Input::Retryable => state.on_result(&wf, &result(err(true)), now, &mut fx),
            Input::Fatal => state.on_result(&wf, &result(err(false)), now, &mut fx),
            Input::Timer => {
                let timer = state.due_timer().expect("a timer to fire");
                assert!(
                    state.on_timer(&wf, &timer, timer.due_ms, &mut fx),
                    "the timer acts"
                );
            }
            Input::Cancel => state.cancel(&wf, now, &mut fx).expect("cancel"),
            Input::HandOver => {
                let w = waiting.expect("a wait");
                let cmd = Command {
                    tx: "t".into(),
                    workflow: "w".into(),
                    step: w.step,
                    step_name: wf.steps[w.step].name.clone(),
                    kind: w.kind,
                    attempt: w.attempt,
                    worker: String::new(),
                    input: bytes::Bytes::new(),
                    basis: 0,
                    token: w.token,
                    timeout_ms: 0,
                    queue_deadline_ms: None,
                    created_ms: 0,
                    guard_due_ms: None,
                    trace: None,
                };
                state.hand_over(&wf, &cmd, now, &mut fx);
            }
        }
    }
    (state, fx)
}

/// What a row expects.
struct Row {
    inputs: &'static [Input],
    here: bool,
    status: SagaStatus,
    /// (step, kind, attempt, stage) waited for.
    waits: Option<(usize, StepKind, u32, Stage)>,
    timer: Option<TimerPurpose>,
    /// Workers of queued commands, then of in-process steps.
    queued: &'static [&'static str],
    local: &'static [&'static str],
    events: &'static [&'static str],
}

use Input::*;
use StepKind::{Compensate as C, Forward as F};

const ROWS: &[Row] = &[
    Row {
        inputs: &[Start],
        here: false,
        status: SagaStatus::Running,
        waits: Some((0, F, 1, Stage::Running)),
        timer: None,
        queued: &["wa"],
        local: &[],
        events: &["workflow.started", "step.dispatched"],
    },
    Row {
        inputs: &[Start],
        here: true,
        status: SagaStatus::Running,
        waits: Some((0, F, 1, Stage::Running)),
        timer: Some(TimerPurpose::Guard),
        queued: &[],
        local: &["wa"],
        events: &["workflow.started", "step.dispatched"],
    },
    Row {
        inputs: &[Start, Ok],
        here: true,
        status: SagaStatus::Running,
        waits: Some((1, F, 1, Stage::Running)),
        timer: Some(TimerPurpose::Guard),
        queued: &[],
        local: &["wb"],
        events: &["step.completed", "step.dispatched"],
    },
    Row {
        inputs: &[Start, Ok, Ok],
        here: true,
        status: SagaStatus::Completed,
        waits: None,
        timer: None,
        queued: &[],
        local: &[],
        events: &["step.completed", "workflow.completed"],
    },
    Row {
        inputs: &[Start, Retryable],
        here: false,
        status: SagaStatus::Running,
        waits: Some((0, F, 2, Stage::Backoff)),
        timer: Some(TimerPurpose::Retry),
        queued: &[],
        local: &[],
        events: &["step.retrying"],
    },
    Row {
        inputs: &[Start, Retryable, Timer],
        here: false,
        status: SagaStatus::Running,
        waits: Some((0, F, 2, Stage::Running)),
        timer: None,
        queued: &["wa"],
        local: &[],
        events: &["step.dispatched"],
    },
    Row {
        inputs: &[Start, Retryable, Timer, Retryable],
        here: false,
        status: SagaStatus::Failed,
        waits: None,
        timer: None,
        queued: &[],
        local: &[],
        events: &["step.failed", "workflow.failed"],
    },
    Row {
        inputs: &[Start, Ok, Fatal],
        here: false,
        status: SagaStatus::Compensating,
        waits: Some((0, C, 1, Stage::Running)),
        timer: None,
        queued: &["undo-a"],
        local: &[],
        events: &["step.failed", "workflow.compensating", "compensation.dispatched"],
    },
    Row {
        inputs: &[Start, Ok, Fatal, Ok],
        here: false,
        status: SagaStatus::Compensated,
        waits: None,
        timer: None,
        queued: &[],
        local: &[],
        events: &["compensation.completed", "workflow.compensated"],
    },
    Row {
        inputs: &[Start, Ok, Fatal, Fatal],
        here: false,
        status: SagaStatus::CompensationFailed,
        waits: None,
        timer: None,
        queued: &[],
        local: &[],
        events: &["compensation.failed", "workflow.compensation_failed"],
    },
    // A guard fires: the same attempt again, its retries kept.
    Row {
        inputs: &[Start, Timer],
        here: true,
        status: SagaStatus::Running,
        waits: Some((0, F, 1, Stage::Running)),
        timer: Some(TimerPurpose::Guard),
        queued: &[],
        local: &["wa"],
        events: &["step.lost", "step.dispatched"],
    },
    // No permit after all: the same attempt, queued, unguarded.
    Row {
        inputs: &[Start, HandOver],
        here: true,
        status: SagaStatus::Running,
        waits: Some((0, F, 1, Stage::Running)),
        timer: None,
        queued: &["wa"],
        local: &[],
        events: &["step.dispatched"],
    },
    // Cancel while a step runs: it finishes first, then is undone.
    Row {
        inputs: &[Start, Cancel],
        here: false,
        status: SagaStatus::Running,
        waits: Some((0, F, 1, Stage::Running)),
        timer: None,
        queued: &[],
        local: &[],
        events: &["workflow.cancel_requested"],
    },
    Row {
        inputs: &[Start, Cancel, Ok],
        here: false,
        status: SagaStatus::Compensating,
        waits: Some((0, C, 1, Stage::Running)),
        timer: None,
        queued: &["undo-a"],
        local: &[],
        events: &[
            "step.completed",
            "workflow.compensating",
            "compensation.dispatched",
        ],
    },
    // Cancel during a backoff: undone at once (nothing completed: cancelled).
    Row {
        inputs: &[Start, Retryable, Cancel],
        here: false,
        status: SagaStatus::Cancelled,
        waits: None,
        timer: None,
        queued: &[],
        local: &[],
        events: &["workflow.cancel_requested", "workflow.cancelled"],
    },
];

#[test]
fn every_transition_of_the_table() {
    for (i, row) in ROWS.iter().enumerate() {
        let (state, fx) = after(row.inputs, row.here);
        let at = format!("row {i}: {:?} (in-process: {})", row.inputs, row.here);
        assert_eq!(state.status, row.status, "{at}: status");
        let waits = state.waiting.map(|w| (w.step, w.kind, w.attempt, w.stage));
        assert_eq!(waits, row.waits, "{at}: waits for");
        assert_eq!(state.deadline.map(|d| d.purpose), row.timer, "{at}: timer");
        let workers = |cs: &[Command]| cs.iter().map(|c| c.worker.clone()).collect::<Vec<_>>();
        assert_eq!(workers(&fx.commands), row.queued, "{at}: queued commands");
        assert_eq!(workers(&fx.local), row.local, "{at}: in-process steps");
        let names: Vec<&str> = fx.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, row.events, "{at}: events");
        // A timer message goes with every armed deadline, and none without.
        assert_eq!(
            fx.timers.first().map(|t| t.purpose),
            row.timer.filter(|_| !fx.timers.is_empty()),
            "{at}"
        );
        if let (Some(w), Some(t)) = (state.waiting, fx.timers.first()) {
            assert_eq!(
                (t.step, t.attempt, t.token),
                (w.step, w.attempt, w.token),
                "{at}: the timer guards the wait"
            );
        }
        if state.status.is_final() {
            assert!(state.deadline.is_none(), "{at}: a finished state keeps no timer");
        }
    }
}

#[test]
fn a_guarded_step_s_guard_is_one_slack_after_dispatch_when_renewed() {
    let (state, fx) = after(&[Start], true);
    assert_eq!(state.deadline.map(|d| d.due_ms), Some(2_000 + 10_000));
    assert_eq!(fx.local[0].guard_due_ms, Some(12_000));
    assert_eq!(fx.local[0].queue_deadline_ms, None);
}
