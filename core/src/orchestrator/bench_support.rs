//! For `benches/codec.rs` only, hidden from the docs and not an API: a
//! transaction driven through its transitions, its state encoded after
//! every change as the engine writes it (kept encodings, appended history)
//! or as it was written before (serde over the whole state).

use bytes::Bytes;
use serde_json::{Value, json};

use super::api::{StepKind, TransactionId};
use super::messages::{Outcome, StepResult};
use super::saga::{Effects, SagaState};
use crate::codec::PayloadCodec;
use crate::error::{Error, ErrorKind, Result};
use crate::workflow::{StepDef, WorkflowDef};

/// A workflow of `steps` steps, the input every run starts from, and the
/// output each step returns (merged into the context).
pub struct StateWrites {
    wf: WorkflowDef,
    input: Value,
    outputs: Vec<Vec<u8>>,
}

impl StateWrites {
    /// `steps` steps; the input is an order with `items` line items; each
    /// step returns a small object of its own.
    pub fn new(steps: usize, items: usize) -> Result<Self> {
        let mut b = WorkflowDef::builder("bench");
        for i in 0..steps {
            b = b.step(StepDef::new(format!("step-{i}"), "worker"));
        }
        let input = json!({
            "order_id": "ord-01JD4Q",
            "customer": "cus-42",
            "amount_cents": 12_999,
            "items": (0..items)
                .map(|i| json!({"sku": format!("sku-{i:05}"), "qty": 1 + i % 5, "unit_price_cents": 499}))
                .collect::<Vec<_>>(),
        });
        let outputs = (0..steps)
            .map(|i| {
                let mut out = Vec::new();
                let v = json!({ format!("step_{i}"): {"ok": true, "ref": format!("r-{i:06}")} });
                ciborium::into_writer(&v, &mut out).map(|()| out)
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::new(ErrorKind::Codec, "cannot encode a step output").with_source(e))?;
        Ok(StateWrites {
            wf: b.build(),
            input,
            outputs,
        })
    }

    /// Runs the transaction from start to end and encodes the state after
    /// each change (`kept`: as the engine does now; else serde over the
    /// whole state). Returns the bytes written, all changes together.
    pub fn run(&self, codec: &PayloadCodec, kept: bool) -> Result<usize> {
        let mut state = SagaState::new(&TransactionId::from("t"), &self.wf, self.input.clone(), 1);
        let mut fx = Effects::over(0);
        state.start(&self.wf, 1, &mut fx);
        let mut written = self.write(codec, &mut state, kept)?.len();
        for (step, output) in self.outputs.iter().enumerate() {
            let token = state.waiting.map_or(0, |w| w.token);
            let result = StepResult {
                tx: "t".into(),
                step,
                kind: StepKind::Forward,
                attempt: 1,
                outcome: Outcome::Ok(output.clone()),
                token,
                guard_due_ms: None,
                trace: None,
            };
            let mut fx = Effects::over(step as u64 + 1);
            state.on_result(&self.wf, &result, 2 + step as u64, &mut fx);
            written += self.write(codec, &mut state, kept)?.len();
        }
        Ok(written)
    }

    fn write(&self, codec: &PayloadCodec, state: &mut SagaState, kept: bool) -> Result<Bytes> {
        if kept {
            codec.encode_with(state, SagaState::write_cbor)
        } else {
            codec.encode(&*state)
        }
    }
}
