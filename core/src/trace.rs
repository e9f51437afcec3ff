//! Trace propagation: one W3C trace per transaction, across instances.
//!
//! A transaction's state keeps its [`TraceParent`]: the trace it belongs
//! to and the span that submitted it. Every command and result envelope
//! carries a `traceparent` header ([`HEADER`]); the instance that runs a
//! step or lands a result opens its span as a child of it, whichever
//! instance that is. So all the spans of one transaction share one trace
//! id, the submitter's, or the caller's when it passed one in
//! ([`Orchestrator::execute_in_trace`](crate::orchestrator::Orchestrator::execute_in_trace),
//! or the caller's current span when an exporter is installed).
//!
//! The orchestrator's spans (`workflow.submit`, `step`, `result`; at
//! `DEBUG` level under the target `multiagents::trace`) record `trace_id`,
//! `span_id` and `parent_span_id` fields. Without anything installed, the
//! span ids are this module's own. An exporter (the root crate's OTLP
//! export, feature `otel`) installs a [`Linker`] that makes each span a
//! child of the remote parent in its own model, and reports the span's
//! own ids back, so the ids in the fields, the headers and the exported
//! spans agree.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use crate::error::{Error, ErrorKind, Result};
use crate::kit::random_u64;

/// The envelope header that carries a [`TraceParent`] (W3C Trace Context).
pub const HEADER: &str = "traceparent";

/// The `tracing` target of the orchestrator's trace spans.
pub const TARGET: &str = "multiagents::trace";

/// A W3C `traceparent`: a trace id, the id of the parent span, and
/// whether the trace is sampled. Its text form is
/// `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

impl TraceParent {
    /// A new trace (random trace and span ids), sampled.
    pub fn new_root() -> Self {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&random_u64().to_be_bytes());
        trace_id[8..].copy_from_slice(&random_u64().to_be_bytes());
        TraceParent {
            trace_id,
            span_id: random_u64().to_be_bytes(),
            flags: 1,
        }
    }

    /// From raw ids (as an exporter holds them). Both must be non-zero.
    pub fn from_ids(trace_id: [u8; 16], span_id: [u8; 8], sampled: bool) -> Result<Self> {
        if trace_id == [0; 16] || span_id == [0; 8] {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a trace id or span id of all zeros is invalid",
            )
            .with_operation("traceparent"));
        }
        Ok(TraceParent {
            trace_id,
            span_id,
            flags: u8::from(sampled),
        })
    }

    /// A span of the same trace, with a new span id.
    #[must_use]
    pub fn child(&self) -> Self {
        TraceParent {
            span_id: random_u64().to_be_bytes(),
            ..*self
        }
    }

    /// The trace id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The (parent) span id.
    pub fn span_id(&self) -> [u8; 8] {
        self.span_id
    }

    /// Whether the trace is sampled (flag bit 0).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 lowercase hex digits.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            self.flags
        )
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

impl FromStr for TraceParent {
    type Err = Error;

    /// Parses a `traceparent` as W3C Trace Context level 1 reads it:
    /// version `00` is exactly four fields; a later version may append
    /// fields after a `-`; version `ff`, upper-case hex and all-zero ids
    /// are invalid.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::new(ErrorKind::InvalidInput, format!("not a W3C traceparent: {why}"))
                .with_operation("traceparent")
                .with_context("value", s.chars().take(80).collect::<String>())
        };
        let b = s.as_bytes();
        if b.len() < 55 {
            return Err(bad("too short (00-<32 hex>-<16 hex>-<2 hex>)"));
        }
        let version =
            unhex::<1>(&b[0..2]).ok_or_else(|| bad("the version is not 2 lowercase hex digits"))?[0];
        if version == 0xff {
            return Err(bad("version ff is invalid"));
        }
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return Err(bad("fields are not separated by '-'"));
        }
        if version == 0 && b.len() != 55 {
            return Err(bad("version 00 has exactly four fields"));
        }
        if b.len() > 55 && b[55] != b'-' {
            return Err(bad("the flags are not 2 hex digits"));
        }
        let trace_id =
            unhex::<16>(&b[3..35]).ok_or_else(|| bad("the trace id is not 32 lowercase hex digits"))?;
        let span_id =
            unhex::<8>(&b[36..52]).ok_or_else(|| bad("the parent id is not 16 lowercase hex digits"))?;
        let flags = unhex::<1>(&b[53..55]).ok_or_else(|| bad("the flags are not 2 lowercase hex digits"))?[0];
        if trace_id == [0; 16] {
            return Err(bad("the trace id is all zeros"));
        }
        if span_id == [0; 8] {
            return Err(bad("the parent id is all zeros"));
        }
        Ok(TraceParent {
            trace_id,
            span_id,
            flags,
        })
    }
}

impl serde::Serialize for TraceParent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TraceParent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

fn unhex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// `envelope` with `trace` in its [`HEADER`] (unchanged without one).
pub(crate) fn stamp(envelope: crate::Envelope, trace: Option<TraceParent>) -> crate::Envelope {
    match trace {
        Some(tp) => envelope.with_header(HEADER, tp.to_string()),
        None => envelope,
    }
}

/// The trace context in `envelope`'s [`HEADER`]. One that does not parse
/// is ignored (as W3C Trace Context says to): the work runs outside the
/// transaction's trace rather than not at all.
pub(crate) fn read(envelope: &crate::Envelope) -> Option<TraceParent> {
    match envelope.header(HEADER)?.parse() {
        Ok(tp) => Some(tp),
        Err(e) => {
            tracing::debug!(error = %e, "ignoring a bad traceparent header");
            None
        }
    }
}

/// What an exporter plugs in to put the orchestrator's spans into its own
/// trace model (installed once per process with [`install`]).
pub trait Linker: Send + Sync + 'static {
    /// Makes `span` (new, not yet entered) a child of the remote `parent`
    /// in the exporter's model, or, with `None`, leaves it the child of
    /// whatever the exporter takes as its parent (the caller's current
    /// span, or none: a new trace). Returns the span's own trace context,
    /// or `None` when the exporter cannot tell (the orchestrator then makes
    /// up a span id).
    fn link(&self, span: &tracing::Span, parent: Option<&TraceParent>) -> Option<TraceParent>;
}

static LINKER: OnceLock<Box<dyn Linker>> = OnceLock::new();

/// Installs the process's [`Linker`]. Only the first call takes effect;
/// a later one is refused with `Conflict`.
pub fn install(linker: Box<dyn Linker>) -> Result<()> {
    LINKER.set(linker).map_err(|_| {
        Error::new(
            ErrorKind::Conflict,
            "a trace linker is already installed in this process",
        )
        .with_operation("trace.install")
    })
}

fn record(span: &tracing::Span, own: &TraceParent, parent: Option<&TraceParent>) {
    span.record("trace_id", own.trace_id_hex());
    span.record("span_id", own.span_id_hex());
    if let Some(parent) = parent {
        span.record("parent_span_id", parent.span_id_hex());
    }
}

/// Joins `span` to the trace of `parent` and records its `trace_id`,
/// `span_id` and `parent_span_id` fields. Returns the span's own context,
/// to hand on to what it causes (its result's header). A disabled span
/// has no context of its own: `parent` is handed on, at no cost.
pub(crate) fn join(span: &tracing::Span, parent: &TraceParent) -> TraceParent {
    if span.is_disabled() {
        return *parent;
    }
    let own = LINKER
        .get()
        .and_then(|l| l.link(span, Some(parent)))
        .filter(|own| own.trace_id == parent.trace_id)
        .unwrap_or_else(|| parent.child());
    record(span, &own, Some(parent));
    own
}

/// Opens the root span of a new transaction: a child of `parent` (the
/// caller's trace) when given; otherwise, with an exporter installed, of
/// the caller's current span as the exporter sees it; otherwise the root
/// of a new trace. Returns the span and its context, which the
/// transaction keeps.
pub(crate) fn submit_span(
    workflow: &str,
    tx: &str,
    parent: Option<TraceParent>,
) -> (tracing::Span, TraceParent) {
    let span = tracing::debug_span!(target: TARGET, "workflow.submit", workflow, tx,
        trace_id = tracing::field::Empty, span_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty);
    if let Some(parent) = parent {
        let own = join(&span, &parent);
        return (span, own);
    }
    if span.is_disabled() {
        return (span, TraceParent::new_root());
    }
    let own = LINKER
        .get()
        .and_then(|l| l.link(&span, None))
        .unwrap_or_else(TraceParent::new_root);
    record(&span, &own, None);
    (span, own)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_prints_the_w3c_example() {
        let tp: TraceParent = SAMPLE.parse().expect("valid");
        assert_eq!(tp.to_string(), SAMPLE);
        assert_eq!(tp.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.span_id_hex(), "00f067aa0ba902b7");
        assert!(tp.sampled());
    }

    #[test]
    fn rejects_what_w3c_says_to_ignore() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "0é-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            let err = bad.parse::<TraceParent>().expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn a_later_version_may_append_fields() {
        let tp: TraceParent = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more"
            .parse()
            .expect("future versions keep the first four fields");
        assert!(!tp.sampled());
        assert_eq!(tp.span_id_hex(), "00f067aa0ba902b7");
    }

    #[test]
    fn children_share_the_trace_and_not_the_span() {
        let root = TraceParent::new_root();
        let a = root.child();
        let b = root.child();
        assert_eq!(a.trace_id(), root.trace_id());
        assert_ne!(a.span_id(), root.span_id());
        assert_ne!(a.span_id(), b.span_id());
        assert_ne!(TraceParent::new_root().trace_id(), root.trace_id());
        assert!(TraceParent::from_ids([0; 16], [1; 8], true).is_err());
    }

    #[test]
    fn serde_round_trips_as_text() {
        let tp: TraceParent = SAMPLE.parse().expect("valid");
        let json = serde_json::to_string(&tp).expect("encode");
        assert_eq!(json, format!("\"{SAMPLE}\""));
        let back: TraceParent = serde_json::from_str(&json).expect("decode");
        assert_eq!(back, tp);
        assert!(serde_json::from_str::<TraceParent>("\"nope\"").is_err());
    }
}
