//! A transaction's state written without encoding the same thing twice.
//!
//! Every change writes the whole state: one key per transaction, swapped
//! whole, is the durable record (a second key for an append-only history
//! would cost every change a second store command; see
//! `docs/design-notes.md`). What did not change since the last write is not
//! encoded again, though:
//!
//! * the context (what the next step gets as its input) is encoded once per
//!   change ([`CborValue`]): the step's command carries those bytes, and
//!   the state write copies them in; the workflow's input once per
//!   transaction held here, and the output shares the context's bytes;
//! * the history is appended to ([`History`]): a finished attempt's record
//!   does not change again, so its encoding is kept, and a write encodes
//!   only the records after the finished head (those that finished since,
//!   and the attempt still running, which is encoded again while it runs).
//!
//! The price is memory: a state kept decoded (`decoded.rs`) holds these
//! encodings beside its values.
//!
//! [`SagaState::write_cbor`] writes the same bytes as the state's derived
//! `Serialize` through ciborium (a test compares them), so a state reads
//! back the same way whichever wrote it, across releases too.

use std::ops::Deref;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::super::api::{AttemptRecord, StepKind};
use super::SagaState;

type CborError = ciborium::ser::Error<std::io::Error>;

/// A JSON value with its CBOR encoding, made when first asked for and
/// dropped when the value changes. (De)serializes and prints as the bare
/// value.
#[derive(Clone, Default)]
pub(crate) struct CborValue {
    value: Value,
    cbor: Option<Bytes>,
}

impl CborValue {
    pub(crate) fn new(value: Value) -> Self {
        CborValue { value, cbor: None }
    }

    pub(crate) fn get(&self) -> &Value {
        &self.value
    }

    /// The value, to change it: its encoding goes.
    pub(crate) fn get_mut(&mut self) -> &mut Value {
        self.cbor = None;
        &mut self.value
    }

    /// Its CBOR encoding, made now if it was not yet.
    pub(crate) fn cbor(&mut self) -> Result<Bytes, CborError> {
        if let Some(b) = &self.cbor {
            return Ok(b.clone());
        }
        let mut out = Vec::with_capacity(256);
        ciborium::into_writer(&self.value, &mut out)?;
        let b = Bytes::from(out);
        self.cbor = Some(b.clone());
        Ok(b)
    }

    /// A copy that shares the encoding (made now if it was not yet).
    pub(crate) fn shared(&mut self) -> CborValue {
        // An encoding that fails here fails again at the write, which
        // reports it; the copy just goes without.
        let _ = self.cbor();
        self.clone()
    }

    /// Writes its encoding: the kept one, or made into `out` directly.
    fn write(&self, out: &mut Vec<u8>) -> Result<(), CborError> {
        match &self.cbor {
            Some(b) => {
                out.extend_from_slice(b);
                Ok(())
            }
            None => ciborium::into_writer(&self.value, out),
        }
    }
}

impl std::fmt::Debug for CborValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

impl Serialize for CborValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

impl<'de> Deserialize<'de> for CborValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(CborValue::new)
    }
}

/// The attempts of a transaction, oldest first, with the encoding of the
/// finished ones at its head kept. Reads as a slice of records; changes
/// only by the three ways a history changes. (De)serializes and prints as
/// the list.
#[derive(Clone, Default)]
pub(crate) struct History {
    records: Vec<AttemptRecord>,
    /// How many records, from the first, are in `cbor` (all finished).
    sealed: usize,
    /// The encodings of `records[..sealed]`, one after the other.
    cbor: Vec<u8>,
}

impl History {
    /// Records an attempt.
    pub(crate) fn push(&mut self, record: AttemptRecord) {
        self.records.push(record);
    }

    /// Finishes the newest unfinished record of this attempt.
    pub(crate) fn finish(&mut self, step: &str, kind: StepKind, attempt: u32, outcome: String, now: u64) {
        if let Some(r) = self
            .records
            .iter_mut()
            .rev()
            .find(|r| r.step == step && r.kind == kind && r.attempt == attempt && r.finished_ms.is_none())
        {
            r.finished_ms = Some(now);
            r.outcome = Some(outcome);
        }
    }

    /// Removes the newest unfinished record of this attempt (a run that
    /// never started).
    pub(crate) fn remove_unfinished(&mut self, step: &str, kind: StepKind, attempt: u32) {
        if let Some(pos) = self.records.iter().rposition(|r| {
            r.step == step && r.kind == kind && r.attempt == attempt && r.finished_ms.is_none()
        }) {
            self.records.remove(pos);
            // Sealed records are finished, so this one was not among them;
            // should that ever change, the kept encoding starts over.
            if pos < self.sealed {
                self.sealed = 0;
                self.cbor.clear();
            }
        }
    }

    /// Writes the list: the kept encodings, then the rest, encoded now;
    /// the finished records at the head of the rest join the kept ones.
    fn write(&mut self, out: &mut Vec<u8>) -> Result<(), CborError> {
        while let Some(r) = self.records.get(self.sealed).filter(|r| r.finished_ms.is_some()) {
            let mark = self.cbor.len();
            if let Err(e) = ciborium::into_writer(r, &mut self.cbor) {
                // No half record kept for the next write.
                self.cbor.truncate(mark);
                return Err(e);
            }
            self.sealed += 1;
        }
        head(out, 4, self.records.len() as u64);
        out.extend_from_slice(&self.cbor);
        for r in &self.records[self.sealed..] {
            ciborium::into_writer(r, &mut *out)?;
        }
        Ok(())
    }
}

impl Deref for History {
    type Target = [AttemptRecord];
    fn deref(&self) -> &[AttemptRecord] {
        &self.records
    }
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.records.fmt(f)
    }
}

impl<'a> IntoIterator for &'a History {
    type Item = &'a AttemptRecord;
    type IntoIter = std::slice::Iter<'a, AttemptRecord>;
    fn into_iter(self) -> Self::IntoIter {
        self.records.iter()
    }
}

impl Serialize for History {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.records.serialize(s)
    }
}

impl<'de> Deserialize<'de> for History {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::deserialize(d).map(|records| History {
            records,
            sealed: 0,
            cbor: Vec::new(),
        })
    }
}

/// A CBOR head: major type `major` with argument `n`, shortest form.
fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// One map entry: the key, then the value through serde.
fn field<T: Serialize + ?Sized>(out: &mut Vec<u8>, key: &str, value: &T) -> Result<(), CborError> {
    ciborium::into_writer(key, &mut *out)?;
    ciborium::into_writer(value, out)
}

fn key(out: &mut Vec<u8>, key: &str) -> Result<(), CborError> {
    ciborium::into_writer(key, out)
}

impl SagaState {
    /// Appends the state's CBOR encoding to `out`: the bytes of its derived
    /// `Serialize` (fields in declaration order), with the kept encodings of
    /// the input, the context, the output and the history's finished head
    /// copied in rather than made again (and kept for the next write).
    pub(crate) fn write_cbor(&mut self, out: &mut Vec<u8>) -> Result<(), CborError> {
        // Every field, by name: a field added to the state and not written
        // here does not compile.
        let SagaState {
            tx,
            workflow,
            status,
            input,
            context,
            completed,
            waiting,
            ending,
            comp_pos,
            cancel_requested,
            error,
            output,
            history,
            created_ms,
            updated_ms,
            deadline,
            trace,
        } = self;
        input.cbor()?;
        context.cbor()?;
        // The derived map's length: `trace` is skipped when it is `None`.
        head(out, 5, 16 + u64::from(trace.is_some()));
        field(out, "tx", tx)?;
        field(out, "workflow", workflow)?;
        field(out, "status", status)?;
        key(out, "input")?;
        input.write(out)?;
        key(out, "context")?;
        context.write(out)?;
        field(out, "completed", completed)?;
        field(out, "waiting", waiting)?;
        field(out, "ending", ending)?;
        field(out, "comp_pos", comp_pos)?;
        field(out, "cancel_requested", cancel_requested)?;
        field(out, "error", error)?;
        key(out, "output")?;
        match output {
            Some(o) => o.write(out)?,
            None => ciborium::into_writer(&None::<()>, &mut *out)?,
        }
        key(out, "history")?;
        history.write(out)?;
        field(out, "created_ms", created_ms)?;
        field(out, "updated_ms", updated_ms)?;
        field(out, "deadline", deadline)?;
        if let Some(t) = trace {
            field(out, "trace", t)?;
        }
        Ok(())
    }
}

/// Asserts that the state writes what its derived `Serialize` writes, and
/// that it reads back to a state that writes the same again (for the
/// property test of the transitions, which checks every state it writes).
#[cfg(test)]
pub(super) fn assert_written_as_derived(state: &mut SagaState) {
    let mut derived = Vec::new();
    ciborium::into_writer(&*state, &mut derived).expect("derived encoding");
    let mut written = Vec::new();
    state.write_cbor(&mut written).expect("write_cbor");
    assert_eq!(
        written, derived,
        "write_cbor differs from the derived encoding of {state:#?}"
    );
    let mut back: SagaState = ciborium::from_reader(written.as_slice()).expect("reads back");
    let mut again = Vec::new();
    back.write_cbor(&mut again)
        .expect("write_cbor of the read-back state");
    assert_eq!(again, written, "the read-back state writes other bytes");
}

#[cfg(test)]
#[path = "encoded_tests.rs"]
mod tests;
