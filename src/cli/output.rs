//! How the CLI prints snapshots, histories, pages and events: aligned text
//! for people, JSON (`--json`) for scripts.

use std::time::Duration;

use multiagents::orchestrator::{AttemptRecord, Event, SagaPage, SagaSnapshot, StepKind};
use multiagents::{Error, ErrorKind, Result};
use serde::Serialize;

pub(crate) use multiagents::validate::redact_url;

/// Writes command output to stdout. When stdout is closed (the reader of a
/// pipe went away: `multiagents list | head`), the process ends with exit
/// code 0, as `head`'s upstream should; any other write error ends it with
/// code 1 and a message on stderr. (`println!` would panic.)
pub(crate) fn emit(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn json<T: Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::new(ErrorKind::Codec, "cannot write JSON output").with_source(e))?;
    outln!("{text}");
    Ok(())
}

fn millis(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// `HH:MM:SS.mmm` (UTC) of a timestamp in ms since the epoch.
pub(crate) fn clock(at_ms: u64) -> String {
    let secs = at_ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        at_ms % 1000
    )
}

fn kind(k: StepKind) -> &'static str {
    match k {
        StepKind::Forward => "step",
        StepKind::Compensate => "compensate",
    }
}

/// A snapshot for people: header, error, history table, output.
pub(crate) fn snapshot(s: &SagaSnapshot) {
    outln!("transaction  {}", s.tx);
    outln!("workflow     {}", s.workflow);
    let now = multiagents::orchestrator::now_ms();
    if s.status.is_final() {
        outln!("status       {} (after {})", s.status, millis(s.elapsed()));
    } else if s.pending {
        outln!(
            "status       pending (created {} ago; no step has finished yet)",
            millis(s.age(now))
        );
    } else {
        outln!("status       {} (for {} so far)", s.status, millis(s.age(now)));
    }
    if let Some(step) = &s.current_step {
        outln!("current step {step}");
    }
    if let Some(err) = &s.error {
        outln!("error        {err}");
    }
    if !s.history.is_empty() {
        outln!();
        history(&s.history);
    }
    if let Some(out) = &s.output {
        outln!();
        outln!("output:");
        outln!(
            "{}",
            serde_json::to_string_pretty(out).unwrap_or_else(|_| out.to_string())
        );
    }
}

/// The attempts as a table.
pub(crate) fn history(records: &[AttemptRecord]) {
    let step_w = records.iter().map(|r| r.step.len()).max().unwrap_or(4).max(4);
    let worker_w = records.iter().map(|r| r.worker.len()).max().unwrap_or(6).max(6);
    outln!(
        "{:<step_w$}  {:<10}  {:>7}  {:<worker_w$}  {:>8}  outcome",
        "step",
        "kind",
        "attempt",
        "worker",
        "took"
    );
    for r in records {
        let took = r
            .finished_ms
            .map(|f| millis(Duration::from_millis(f.saturating_sub(r.started_ms))))
            .unwrap_or_else(|| "…".into());
        outln!(
            "{:<step_w$}  {:<10}  {:>7}  {:<worker_w$}  {:>8}  {}",
            r.step,
            kind(r.kind),
            r.attempt,
            r.worker,
            took,
            r.outcome.as_deref().unwrap_or("running")
        );
    }
}

/// A page of transactions, one per line.
pub(crate) fn page(p: &SagaPage) {
    if p.items.is_empty() {
        outln!("no transactions");
    } else {
        outln!(
            "{:<36}  {:<20}  {:<20}  {:>9}  error",
            "transaction",
            "workflow",
            "status",
            "elapsed"
        );
    }
    for s in &p.items {
        outln!(
            "{}  {:<20}  {:<20}  {:>9}  {}",
            s.tx,
            s.workflow,
            s.status_label(),
            millis(s.age(multiagents::orchestrator::now_ms())),
            s.error.as_deref().unwrap_or("")
        );
    }
    if let Some(c) = &p.cursor {
        outln!("more: --cursor {c}");
    }
}

/// One event, one line.
pub(crate) fn event(e: &Event) {
    // An instance's own events (memory levels) belong to no transaction.
    let tx = if e.tx.is_empty() { "(instance)" } else { &e.tx };
    let mut line = format!("{}  {}  {:<24}  {}", clock(e.at_ms), tx, e.name, e.workflow);
    if let Some(step) = &e.step {
        line.push_str(&format!("/{step}"));
    }
    if let Some(a) = e.attempt {
        line.push_str(&format!("#{a}"));
    }
    if let Some(d) = &e.detail {
        line.push_str(&format!("  {d}"));
    }
    outln!("{line}");
}
