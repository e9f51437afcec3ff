//! A property test of the guard timer of a chain of in-process steps: the
//! dispatch rule that keeps a guard (`SagaState` with `Effects::guard`)
//! together with the runner's renewal schedule ([`first_beat`],
//! [`beat_of`]), in simulated milliseconds (one clock, ticks on time), for
//! random slacks, step durations, write latencies and a last renewal that
//! failed (the guard's place unknown). Claims and clock skew are not
//! modelled. Whatever they are:
//!
//! * the due time a runner starts from is where the store's timer stands
//!   (else its first renewal would find the timer moved and drop the run);
//! * the timer never comes due while a step runs, each renewal has at
//!   least the margin the rule before kept guards gave (a beat less than
//!   what was left when the run started), and a full slack's less a beat
//!   whenever that much was left.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;

use super::{beat_of, first_beat};
use crate::orchestrator::api::TransactionId;
use crate::orchestrator::messages::Outcome;
use crate::orchestrator::saga::{Effects, Placement, SagaState};
use crate::scheduler::millis;
use crate::workflow::{StepDef, WorkflowDef};

fn effects(basis: u64, slack_ms: u64) -> Effects {
    let mut fx = Effects::over(basis);
    fx.placement = Some(Placement {
        run_here: Arc::new(|_: &str| true),
        guard_slack_ms: slack_ms,
        renewed: true,
    });
    fx
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_kept_guard_is_where_the_timer_stands_and_renewed_in_time(
        slack_ms in 100u64..20_000,
        // Per step: its duration in thousandths of the slack, whether its
        // runner's last renewal failed (where the guard stands unknown),
        // and the latency of the write before it starts (ms).
        steps in proptest::collection::vec((0u64..2_500, any::<bool>(), 0u64..40), 1..10),
    ) {
        let slack = Duration::from_millis(slack_ms);
        let beat = millis(beat_of(slack));
        let mut wf = WorkflowDef::builder("w");
        for i in 0..steps.len() {
            wf = wf.step(StepDef::new(format!("s{i}"), "w"));
        }
        let wf = wf.build();
        let mut state = SagaState::new(&TransactionId::from("t"), &wf, json!({}), 0);
        let mut fx = effects(0, slack_ms);
        state.start(&wf, 0, &mut fx);
        // The store's timer: armed by the write that dispatched step 0.
        let mut score = state.deadline.map(|d| d.due_ms).expect("a guard");
        let mut cmd = fx.local.pop().expect("step 0 runs in-process");
        let mut now = 0u64;
        for (i, &(thousandths, lost, latency)) in steps.iter().enumerate() {
            now += latency;
            let due = cmd.guard_due_ms.expect("a guarded run");
            prop_assert_eq!(due, score, "step {} starts from where the timer stands", i);
            let end = now + slack_ms * thousandths / 1_000;
            let left_at_start = due.saturating_sub(now);
            let mut due = due;
            let mut at = now + millis(first_beat(due, now, slack));
            let mut renewed = false;
            while at < end {
                prop_assert!(score > at, "step {}: the guard came due at {} while it ran", i, score);
                let margin = score - at;
                if !renewed {
                    prop_assert!(margin >= left_at_start.saturating_sub(beat),
                        "step {}: first renewal with {} ms left (started with {})", i, margin, left_at_start);
                    if left_at_start >= slack_ms - beat {
                        prop_assert_eq!(margin, slack_ms - beat, "step {}: a fresh guard's margin", i);
                    }
                } else {
                    prop_assert!(margin >= slack_ms - beat, "step {}: renewal with {} ms left", i, margin);
                }
                score = at + slack_ms;
                due = score;
                renewed = true;
                at += beat;
            }
            prop_assert!(score > end, "step {}: the guard came due at {} before its end at {}", i, score, end);
            now = end;
            let mut result = cmd.result(Outcome::Ok(vec![0xa0]));
            result.guard_due_ms = (!(lost && renewed)).then_some(due);
            let before = state.deadline;
            let mut fx = effects(i as u64 + 1, slack_ms);
            state.on_result(&wf, &result, now, &mut fx);
            if i + 1 == steps.len() {
                prop_assert!(state.status.is_final());
                break;
            }
            let deadline = state.deadline.expect("the next step's guard");
            // What `commit` does with the timer: keep it when the deadline
            // is unchanged, else move it there.
            if Some(deadline) != before {
                score = deadline.due_ms;
            }
            cmd = fx.local.pop().expect("the next step runs in-process");
        }
    }
}
