//! The transactions of a load test in flight, and their outcomes: from
//! lifecycle events (fast, at most once) and from a sweep that reads the
//! state of those not heard of (reliable), whichever comes first.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use multiagents_core::orchestrator::{SagaStatus, TransactionId};
use multiagents_core::{Error, Result};
use tokio::sync::OwnedSemaphorePermit;

use super::{ErrorGroup, Latency, LoadReport, LoadSpec, Progress};
use crate::Runtime;

/// How often the sweep runs.
const SWEEP: Duration = Duration::from_millis(200);
/// A transaction not heard of this long is read from the store.
const QUIET: Duration = Duration::from_millis(500);
/// Most states one sweep reads.
const SWEEP_READS: usize = 256;
/// An outcome seen before its submission returned is kept this long.
const EARLY_KEEP: Duration = Duration::from_secs(60);

struct InFlight {
    intended: Instant,
    /// When its submission was actually made.
    sent: Instant,
    _slot: OwnedSemaphorePermit,
    checked: Option<Instant>,
}

#[derive(Default)]
struct Counts {
    sent: u64,
    refused: u64,
    completed: u64,
    failed: u64,
    compensated: u64,
    cancelled: u64,
    timed_out: u64,
}

struct State {
    in_flight: HashMap<String, InFlight>,
    /// Outcomes that came before their submission returned.
    early: HashMap<String, (SagaStatus, Option<String>, Instant)>,
    /// From each intended start (open loop).
    latency: Histogram<u64>,
    /// From each actual submission (service time).
    service: Histogram<u64>,
    counts: Counts,
    errors: BTreeMap<String, (u64, String)>,
    last: Option<Instant>,
}

impl State {
    fn error(&mut self, kind: &str, message: impl FnOnce() -> String) {
        let entry = self
            .errors
            .entry(kind.to_string())
            .or_insert_with(|| (0, message()));
        entry.0 += 1;
    }

    /// Records how long `since` was before `at` in both histograms.
    fn time(&mut self, from: &InFlight, at: Instant) {
        for (h, start) in [(&mut self.latency, from.intended), (&mut self.service, from.sent)] {
            let micros = at.saturating_duration_since(start).as_micros().max(1) as u64;
            let _ = h.record(micros.min(h.high()));
        }
    }

    fn land(&mut self, tx: &str, from: &InFlight, status: SagaStatus, detail: Option<String>, at: Instant) {
        self.time(from, at);
        self.last = Some(self.last.map_or(at, |l| l.max(at)));
        let kind = match status {
            SagaStatus::Completed => {
                self.counts.completed += 1;
                return;
            }
            SagaStatus::Compensated => {
                self.counts.compensated += 1;
                "compensated"
            }
            SagaStatus::Cancelled => {
                self.counts.cancelled += 1;
                "cancelled"
            }
            SagaStatus::CompensationFailed => {
                self.counts.failed += 1;
                "compensation_failed"
            }
            _ => {
                self.counts.failed += 1;
                "failed"
            }
        };
        self.error(kind, || match detail {
            Some(d) => format!("{tx}: {d}"),
            None => format!("{tx} ended {status}"),
        });
    }
}

/// Shared by the submitters, the event listener and the sweep.
#[derive(Clone)]
pub(super) struct Tracker {
    state: Arc<Mutex<State>>,
    tasks: Arc<Vec<tokio::task::JoinHandle<()>>>,
}

impl Tracker {
    /// Starts listening for outcomes of transactions on `runtime`.
    pub(super) async fn start(runtime: &Runtime, spec: &LoadSpec) -> Result<Tracker> {
        let latency = Histogram::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| {
            Error::new(
                multiagents_core::ErrorKind::Unexpected,
                format!("latency histogram: {e}"),
            )
        })?;
        let state = Arc::new(Mutex::new(State {
            in_flight: HashMap::new(),
            early: HashMap::new(),
            service: latency.clone(),
            latency,
            counts: Counts::default(),
            errors: BTreeMap::new(),
            last: None,
        }));
        let mut events = runtime.events().await?;
        let listening = {
            let state = state.clone();
            tokio::spawn(async move {
                while let Some(event) = events.next().await {
                    let Ok(e) = event else { continue };
                    if let Some(status) = e.status.filter(|s| s.is_final()) {
                        outcome(&state, &e.tx, status, e.detail, Instant::now());
                    }
                }
            })
        };
        let sweeping = {
            let (state, runtime, timeout) = (state.clone(), runtime.clone(), spec.timeout);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(SWEEP).await;
                    sweep(&state, &runtime, timeout).await;
                }
            })
        };
        Ok(Tracker {
            state,
            tasks: Arc::new(vec![listening, sweeping]),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Submission of `tx` (intended at `intended`, made at `sent`)
    /// returned; it holds `slot` until its outcome.
    pub(super) fn started(&self, tx: String, intended: Instant, sent: Instant, slot: OwnedSemaphorePermit) {
        let mut s = self.lock();
        s.counts.sent += 1;
        let flight = InFlight {
            intended,
            sent,
            _slot: slot,
            checked: None,
        };
        if let Some((status, detail, at)) = s.early.remove(&tx) {
            s.land(&tx, &flight, status, detail, at);
            return;
        }
        s.in_flight.insert(tx, flight);
    }

    /// A submission was refused.
    pub(super) fn refused(&self, e: &Error) {
        let mut s = self.lock();
        s.counts.sent += 1;
        s.counts.refused += 1;
        s.last = Some(Instant::now());
        s.error(e.kind().as_str(), || e.to_string());
    }

    /// Whether all `total` submissions returned and every outcome is known.
    pub(super) fn settled(&self, total: u64) -> bool {
        let s = self.lock();
        s.counts.sent >= total && s.in_flight.is_empty()
    }

    pub(super) fn progress(&self, start: Instant) -> Progress {
        let s = self.lock();
        let c = &s.counts;
        let done = c.refused + c.completed + c.failed + c.compensated + c.cancelled + c.timed_out;
        Progress {
            elapsed: start.elapsed(),
            sent: c.sent,
            done,
            errors: done - c.completed,
            p99: super::quantile(&s.latency, 0.99),
            rate: 0.0,
        }
    }

    /// The report; stops listening.
    pub(super) fn finish(&self, spec: &LoadSpec, start: Instant) -> LoadReport {
        for t in self.tasks.iter() {
            t.abort();
        }
        let s = self.lock();
        let c = &s.counts;
        let finals = c.completed + c.failed + c.compensated + c.cancelled;
        let elapsed = s
            .last
            .map_or(Duration::ZERO, |l| l.saturating_duration_since(start));
        let mut errors: Vec<ErrorGroup> = s
            .errors
            .iter()
            .map(|(kind, (count, sample))| ErrorGroup {
                kind: kind.clone(),
                count: *count,
                sample: sample.clone(),
            })
            .collect();
        errors.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.kind.cmp(&b.kind)));
        LoadReport {
            workflow: spec.workflow.clone(),
            target_rate: spec.rate,
            sent: c.sent,
            rejected: c.refused,
            completed: c.completed,
            failed: c.failed,
            compensated: c.compensated,
            cancelled: c.cancelled,
            timed_out: c.timed_out,
            throughput: if elapsed.is_zero() {
                0.0
            } else {
                finals as f64 / elapsed.as_secs_f64()
            },
            completed_rate: if elapsed.is_zero() {
                0.0
            } else {
                c.completed as f64 / elapsed.as_secs_f64()
            },
            error_rate: if c.sent == 0 {
                0.0
            } else {
                (c.sent - c.completed) as f64 / c.sent as f64
            },
            latency: Latency::of(&s.latency),
            service: Latency::of(&s.service),
            errors,
            elapsed_s: elapsed.as_secs_f64(),
            histogram: Some(Arc::new(s.latency.clone())),
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if Arc::strong_count(&self.tasks) == 1 {
            for t in self.tasks.iter() {
                t.abort();
            }
        }
    }
}

/// `tx` ended `status` at `at`.
fn outcome(state: &Mutex<State>, tx: &str, status: SagaStatus, detail: Option<String>, at: Instant) {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    match s.in_flight.remove(tx) {
        Some(f) => s.land(tx, &f, status, detail, at),
        None if !s.early.contains_key(tx) => {
            // Its submission has not returned yet (or it is not ours: a
            // shared backend's other clients; pruned by the sweep).
            s.early.insert(tx.to_string(), (status, detail, at));
        }
        None => {}
    }
}

/// Reads the state of transactions not heard of lately (oldest first, a
/// bounded number), lands the final ones, times out the overdue.
async fn sweep(state: &Mutex<State>, runtime: &Runtime, timeout: Duration) {
    let now = Instant::now();
    let due: Vec<(String, Instant)> = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.early
            .retain(|_, (_, _, at)| now.saturating_duration_since(*at) < EARLY_KEEP);
        let mut overdue = Vec::new();
        let mut quiet: Vec<(String, Instant)> = Vec::new();
        for (tx, f) in &s.in_flight {
            if now.saturating_duration_since(f.intended) > timeout {
                overdue.push(tx.clone());
            } else if now.saturating_duration_since(f.intended) > QUIET
                && f.checked.is_none_or(|c| now.saturating_duration_since(c) > QUIET)
            {
                quiet.push((tx.clone(), f.intended));
            }
        }
        for tx in overdue {
            if let Some(f) = s.in_flight.remove(&tx) {
                // The worst latencies belong in the percentiles too.
                s.time(&f, now);
            }
            s.counts.timed_out += 1;
            s.last = Some(now);
            s.error("timed_out", || format!("{tx}: not final within {timeout:?}"));
        }
        quiet.sort_by_key(|(_, intended)| *intended);
        quiet.truncate(SWEEP_READS);
        for (tx, _) in &quiet {
            if let Some(f) = s.in_flight.get_mut(tx) {
                f.checked = Some(now);
            }
        }
        quiet
    };
    for (tx, _) in due {
        let Ok(snap) = runtime.status(&TransactionId::from(tx.as_str())).await else {
            continue;
        };
        if snap.status.is_final() {
            // Its final write's time, on this machine's clock.
            let ago = multiagents_core::orchestrator::now_ms().saturating_sub(snap.updated_ms);
            let at = Instant::now()
                .checked_sub(Duration::from_millis(ago))
                .unwrap_or_else(Instant::now);
            outcome(state, &tx, snap.status, snap.error, at);
        }
    }
}
