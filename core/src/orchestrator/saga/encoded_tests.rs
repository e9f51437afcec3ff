//! The state's own CBOR writer against its derived `Serialize`: the same
//! bytes, whatever was kept from earlier writes.

use serde_json::json;

use super::super::Effects;
use super::*;
use crate::orchestrator::api::{SagaStatus, TransactionId};
use crate::orchestrator::messages::{Outcome, StepResult};
use crate::trace::TraceParent;
use crate::workflow::{StepDef, WorkflowDef};

fn wf() -> WorkflowDef {
    WorkflowDef::builder("w")
        .step(StepDef::new("a", "wa"))
        .step(StepDef::new("b", "wb").compensate_with("undo-b"))
        .step(StepDef::new("c", "wc"))
        .build()
}

fn ok(step: usize, token: u64, output: serde_json::Value) -> StepResult {
    let mut bytes = Vec::new();
    ciborium::into_writer(&output, &mut bytes).expect("encodes");
    StepResult {
        tx: "t".into(),
        step,
        kind: StepKind::Forward,
        attempt: 1,
        outcome: Outcome::Ok(bytes),
        token,
        guard_due_ms: None,
        trace: None,
    }
}

fn record(i: u64, finished: bool) -> AttemptRecord {
    AttemptRecord {
        step: format!("s{i}"),
        kind: StepKind::Forward,
        attempt: 1,
        worker: "w".into(),
        started_ms: i,
        finished_ms: finished.then_some(i + 1),
        outcome: finished.then(|| "ok".to_string()),
    }
}

#[test]
fn every_write_of_a_run_is_the_derived_encoding_and_the_step_input_is_the_context_s() {
    let wf = wf();
    let input = json!({"order": {"id": "o-1", "items": [1, 2.5, "x", null, true], "note": "ü ☃"}});
    let mut state = SagaState::new(&TransactionId::from("t"), &wf, input.clone(), 10);
    state.trace = Some(TraceParent::new_root());
    let mut fx = Effects::over(0);
    state.start(&wf, 10, &mut fx);
    assert_written_as_derived(&mut state);
    // The command's input is the context's one encoding.
    let mut expected = Vec::new();
    ciborium::into_writer(&input, &mut expected).expect("encodes");
    assert_eq!(fx.commands[0].input.as_ref(), expected.as_slice());
    for (step, out) in [
        (0, json!({"paid": 12})),
        (1, json!([1, 2])),
        (2, json!({"shipped": true})),
    ] {
        let token = state.waiting.expect("waiting").token;
        let mut fx = Effects::over(step as u64 + 1);
        state.on_result(&wf, &ok(step, token, out), 20 + step as u64, &mut fx);
        assert_written_as_derived(&mut state);
        if let Some(c) = fx.commands.first() {
            let mut expected = Vec::new();
            ciborium::into_writer(state.context.get(), &mut expected).expect("encodes");
            assert_eq!(
                c.input.as_ref(),
                expected.as_slice(),
                "the input is the context now"
            );
        }
    }
    assert_eq!(state.status, SagaStatus::Completed);
    assert_eq!(
        state.output.as_ref().map(CborValue::get),
        Some(state.context.get())
    );
    assert_eq!(state.history.len(), 3);
    assert_eq!(state.history.sealed, 3, "every finished record is kept encoded");
}

#[test]
fn a_changed_context_is_encoded_again_not_served_from_before() {
    let mut v = CborValue::new(json!({"a": 1}));
    let first = v.cbor().expect("encodes");
    v.get_mut()["a"] = json!(2);
    let second = v.cbor().expect("encodes");
    assert_ne!(first, second);
    let back: serde_json::Value = ciborium::from_reader(second.as_ref()).expect("decodes");
    assert_eq!(back, json!({"a": 2}));
}

#[test]
fn the_kept_head_of_the_history_stops_at_the_first_unfinished_record() {
    let mut h = History::default();
    h.push(record(0, true));
    h.push(record(1, false));
    h.push(record(2, true));
    let mut out = Vec::new();
    h.write(&mut out).expect("writes");
    assert_eq!(h.sealed, 1, "the record after an unfinished one waits");
    let mut derived = Vec::new();
    ciborium::into_writer(&h.records, &mut derived).expect("encodes");
    assert_eq!(out, derived);
    h.finish("s1", StepKind::Forward, 1, "ok".into(), 5);
    out.clear();
    h.write(&mut out).expect("writes");
    assert_eq!(h.sealed, 3);
    derived.clear();
    ciborium::into_writer(&h.records, &mut derived).expect("encodes");
    assert_eq!(
        out, derived,
        "a record finished after it was written is written finished"
    );
}

#[test]
fn a_removed_unfinished_record_leaves_the_kept_head_alone() {
    let mut h = History::default();
    h.push(record(0, true));
    h.push(record(1, false));
    let mut out = Vec::new();
    h.write(&mut out).expect("writes");
    h.remove_unfinished("s1", StepKind::Forward, 1);
    assert_eq!((h.len(), h.sealed), (1, 1));
    out.clear();
    h.write(&mut out).expect("writes");
    let mut derived = Vec::new();
    ciborium::into_writer(&h.records, &mut derived).expect("encodes");
    assert_eq!(out, derived);
}

#[test]
fn long_histories_and_large_values_take_the_longer_cbor_heads() {
    // 24 and 256 records cross the one- and two-byte length forms; 70 000
    // the four-byte one.
    for n in [23u64, 24, 255, 256, 70_000] {
        let mut state = SagaState::new(&TransactionId::from("t"), &wf(), json!({}), 0);
        for i in 0..n {
            state.history.push(record(i, i + 1 < n));
        }
        assert_written_as_derived(&mut state);
        assert_eq!(state.history.sealed as u64, n - 1);
        // And once more, from the kept encodings.
        assert_written_as_derived(&mut state);
    }
    let mut out = Vec::new();
    for (n, len) in [
        (0u64, 1),
        (23, 1),
        (24, 2),
        (255, 2),
        (256, 3),
        (65_535, 3),
        (65_536, 5),
        (1 << 32, 9),
    ] {
        out.clear();
        head(&mut out, 4, n);
        assert_eq!(out.len(), len, "head of {n}");
    }
}

#[test]
fn a_read_state_keeps_nothing_and_writes_the_same() {
    let wf = wf();
    let mut state = SagaState::new(&TransactionId::from("t"), &wf, json!({"k": "v"}), 1);
    state.start(&wf, 1, &mut Effects::over(0));
    let mut written = Vec::new();
    state.write_cbor(&mut written).expect("writes");
    let back: SagaState = ciborium::from_reader(written.as_slice()).expect("decodes");
    assert!(back.context.cbor.is_none() && back.history.sealed == 0);
    assert_eq!(back.context.get(), &json!({"k": "v"}));
}
