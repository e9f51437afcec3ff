//! The transactions of a load test in flight, and their outcomes: from
//! lifecycle events (fast, at most once) and from a sweep that reads the
//! state of those not heard of (reliable), whichever comes first.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use multiagents_core::codec::PayloadCodec;
use multiagents_core::orchestrator::{SagaStatus, TransactionId};
use multiagents_core::{Error, Result};
use tokio::sync::OwnedSemaphorePermit;

use super::{ErrorGroup, Latency, LoadReport, LoadSpec, Progress, TxOutcome};
use crate::Runtime;

/// How often the sweep runs.
const SWEEP: Duration = Duration::from_millis(200);
/// A transaction not heard of this long is read from the store.
const QUIET: Duration = Duration::from_millis(500);
/// Fewest states one sweep may read.
const SWEEP_READS: usize = 256;
/// Most states one sweep reads, whatever the rate.
const SWEEP_READS_MAX: usize = 16_384;
/// The longest between two reads of one quiet transaction's state.
const RECHECK_MAX: Duration = Duration::from_secs(8);
/// State reads of one sweep in flight at once.
const SWEEP_CONCURRENCY: usize = 64;
/// An outcome seen before its submission returned is kept this long.
const EARLY_KEEP: Duration = Duration::from_secs(60);

/// What the tracker reads of a lifecycle event (`Event`): every event of
/// the run passes here, and only a final status counts, so the other
/// fields are skipped rather than decoded (decoding whole events was a
/// tenth of an in-process run's CPU).
#[derive(serde::Deserialize)]
struct Heard {
    tx: String,
    #[serde(default)]
    status: Option<SagaStatus>,
    #[serde(default)]
    detail: Option<String>,
}

struct InFlight {
    intended: Instant,
    /// When its submission was actually made.
    sent: Instant,
    _slot: OwnedSemaphorePermit,
    checked: Option<Instant>,
    /// How long after a read it is read again: doubled by each read (from
    /// [`QUIET`] to [`RECHECK_MAX`]), so a slow system is not loaded by
    /// re-reads of the same transactions.
    recheck: Duration,
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
    /// Every outcome, when the spec keeps them.
    outcomes: Option<Vec<TxOutcome>>,
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

    /// `tx` was not final within `timeout`: counted timed out at `now`
    /// (unless its outcome came meanwhile: then it is not in flight).
    fn time_out(&mut self, tx: &str, now: Instant, timeout: Duration) {
        let Some(f) = self.in_flight.remove(tx) else {
            return;
        };
        // The worst latencies belong in the percentiles too.
        self.time(&f, now);
        self.counts.timed_out += 1;
        self.last = Some(now);
        self.keep(tx, None);
        self.error("timed_out", || format!("{tx}: not final within {timeout:?}"));
    }

    fn keep(&mut self, tx: &str, status: Option<SagaStatus>) {
        if let Some(outcomes) = &mut self.outcomes {
            outcomes.push(TxOutcome {
                tx: tx.to_string(),
                status,
            });
        }
    }

    fn land(&mut self, tx: &str, from: &InFlight, status: SagaStatus, detail: Option<String>, at: Instant) {
        self.time(from, at);
        self.keep(tx, Some(status));
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
            outcomes: spec.keep_outcomes.then(Vec::new),
        }));
        let mut events = runtime.events().await?.into_inner();
        let listening = {
            let state = state.clone();
            tokio::spawn(async move {
                let codec = PayloadCodec::default();
                while let Some(delivery) = events.next().await {
                    let Ok(d) = delivery else { continue };
                    let Ok(e) = codec.decode::<Heard>(d.payload()) else {
                        continue;
                    };
                    if let Some(status) = e.status.filter(|s| s.is_final()) {
                        outcome(&state, &e.tx, status, e.detail, Instant::now());
                    }
                }
            })
        };
        let sweeping = {
            let (state, runtime, timeout) = (state.clone(), runtime.clone(), spec.timeout);
            let budget = sweep_budget(spec.rate);
            tokio::spawn(async move {
                let read = |tx: String| {
                    let runtime = runtime.clone();
                    async move {
                        let snap = runtime.status(&TransactionId::from(tx.as_str())).await.ok()?;
                        Some(Read {
                            status: snap.status,
                            updated_ms: snap.updated_ms,
                            error: snap.error,
                        })
                    }
                };
                loop {
                    tokio::time::sleep(SWEEP).await;
                    sweep(&state, timeout, budget, read).await;
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
            recheck: QUIET,
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
        let mut s = self.lock();
        let outcomes = s.outcomes.take().unwrap_or_default();
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
            outcomes,
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

/// How many states one sweep may read at `rate` submissions per second:
/// twice the transactions that fall quiet between two sweeps (room for
/// reading again those still running, and for catching up), at least
/// [`SWEEP_READS`], at most [`SWEEP_READS_MAX`]. With a fixed budget, a
/// run faster than it whose events are lost (a cluster's) fell behind,
/// and completed transactions were counted as timed out.
fn sweep_budget(rate: f64) -> usize {
    let per_sweep = rate * SWEEP.as_secs_f64() * 2.0;
    if per_sweep.is_finite() && per_sweep > SWEEP_READS as f64 {
        (per_sweep.ceil() as usize).min(SWEEP_READS_MAX)
    } else {
        SWEEP_READS
    }
}

/// What the sweep reads of a transaction's state.
struct Read {
    status: SagaStatus,
    /// Its last write (ms since the Unix epoch).
    updated_ms: u64,
    error: Option<String>,
}

/// Reads (`read`, [`SWEEP_CONCURRENCY`] at a time) the state of at most
/// `budget` transactions: first those past `timeout` (one last look, so a
/// transaction whose outcome event was lost is not counted timed out), then
/// those not heard of lately, oldest first. Lands the final ones, times out
/// the overdue that are not final (or cannot be read).
async fn sweep<F, Fut>(state: &Mutex<State>, timeout: Duration, budget: usize, read: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Option<Read>>,
{
    use futures_util::StreamExt;

    let now = Instant::now();
    let due: Vec<(String, Instant, bool)> = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.early
            .retain(|_, (_, _, at)| now.saturating_duration_since(*at) < EARLY_KEEP);
        let mut overdue: Vec<(String, Instant, bool)> = Vec::new();
        let mut quiet: Vec<(String, Instant, bool)> = Vec::new();
        for (tx, f) in &s.in_flight {
            let age = now.saturating_duration_since(f.intended);
            if age > timeout {
                overdue.push((tx.clone(), f.intended, true));
            } else if age > QUIET
                && f.checked
                    .is_none_or(|c| now.saturating_duration_since(c) > f.recheck)
            {
                quiet.push((tx.clone(), f.intended, false));
            }
        }
        overdue.sort_by_key(|(_, intended, _)| *intended);
        quiet.sort_by_key(|(_, intended, _)| *intended);
        let mut due = overdue;
        due.extend(quiet);
        due.truncate(budget);
        for (tx, _, _) in &due {
            if let Some(f) = s.in_flight.get_mut(tx) {
                if f.checked.is_some() {
                    f.recheck = (f.recheck * 2).min(RECHECK_MAX);
                }
                f.checked = Some(now);
            }
        }
        due
    };
    let reads = futures_util::stream::iter(due)
        .map(|(tx, intended, overdue)| {
            let reading = read(tx.clone());
            async move { (tx, intended, overdue, reading.await) }
        })
        .buffer_unordered(SWEEP_CONCURRENCY);
    futures_util::pin_mut!(reads);
    while let Some((tx, intended, overdue, reading)) = reads.next().await {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        match reading {
            Some(r) if r.status.is_final() => {
                // Its final write's time, on this machine's clock.
                let ago = multiagents_core::orchestrator::now_ms().saturating_sub(r.updated_ms);
                let at = Instant::now()
                    .checked_sub(Duration::from_millis(ago))
                    .unwrap_or_else(Instant::now);
                if at.saturating_duration_since(intended) > timeout {
                    // Final, but only after its timeout.
                    s.time_out(&tx, now, timeout);
                } else if let Some(f) = s.in_flight.remove(&tx) {
                    s.land(&tx, &f, r.status, r.error, at);
                }
            }
            _ if overdue => s.time_out(&tx, now, timeout),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tracker_reads_the_tx_status_and_detail_of_an_encoded_event() {
        let codec = PayloadCodec::default();
        let event = |name: &str, status: Option<SagaStatus>, detail: Option<&str>| {
            let e = multiagents_core::orchestrator::Event {
                tx: "tx-1".into(),
                workflow: "w".into(),
                name: name.into(),
                step: Some("a".into()),
                attempt: Some(2),
                status,
                detail: detail.map(str::to_string),
                at_ms: 7,
            };
            codec.encode(&e).expect("encode")
        };
        let heard: Heard = codec
            .decode(&event("workflow.failed", Some(SagaStatus::Failed), Some("boom")))
            .expect("decode");
        assert_eq!(
            (heard.tx.as_str(), heard.status, heard.detail.as_deref()),
            ("tx-1", Some(SagaStatus::Failed), Some("boom"))
        );
        let heard: Heard = codec
            .decode(&event("step.completed", None, None))
            .expect("decode");
        assert_eq!((heard.status, heard.detail), (None, None));
    }

    /// A tracker's state with `txs` in flight, each intended `ago`.
    fn in_flight(txs: &[String], ago: Duration) -> Mutex<State> {
        let latency = Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram");
        let slots = Arc::new(tokio::sync::Semaphore::new(txs.len()));
        let intended = Instant::now().checked_sub(ago).expect("a past instant");
        let in_flight = txs
            .iter()
            .map(|tx| {
                let flight = InFlight {
                    intended,
                    sent: intended,
                    _slot: slots.clone().try_acquire_owned().expect("a slot"),
                    checked: None,
                    recheck: QUIET,
                };
                (tx.clone(), flight)
            })
            .collect();
        Mutex::new(State {
            in_flight,
            early: HashMap::new(),
            service: latency.clone(),
            latency,
            counts: Counts::default(),
            errors: BTreeMap::new(),
            last: None,
            outcomes: Some(Vec::new()),
        })
    }

    /// A state read: `status`, last written `ago`.
    fn read(status: SagaStatus, ago: Duration) -> Option<Read> {
        let now = multiagents_core::orchestrator::now_ms();
        Some(Read {
            status,
            updated_ms: now - ago.as_millis() as u64,
            error: None,
        })
    }

    #[test]
    fn the_budget_follows_the_rate_within_bounds() {
        assert_eq!(sweep_budget(100.0), SWEEP_READS);
        assert_eq!(sweep_budget(5_000.0), 2_000);
        assert_eq!(sweep_budget(1e9), SWEEP_READS_MAX);
        assert_eq!(sweep_budget(f64::NAN), SWEEP_READS);
    }

    /// At 5 000/s, 1 000 transactions fall quiet between two sweeps; with
    /// their events lost, one sweep reads all 1 500 quiet ones (a fixed
    /// budget of 256 read a sixth of them and fell behind).
    #[tokio::test]
    async fn one_sweep_keeps_up_with_the_transactions_the_rate_makes_quiet() {
        let txs: Vec<String> = (0..1_500).map(|i| format!("tx-{i}")).collect();
        let state = in_flight(&txs, Duration::from_secs(1));
        let done = |_tx: String| async { read(SagaStatus::Completed, Duration::from_millis(400)) };
        sweep(&state, Duration::from_secs(30), sweep_budget(5_000.0), done).await;
        let s = state.lock().expect("state");
        assert_eq!(s.counts.completed, 1_500);
        assert!(s.in_flight.is_empty());
    }

    /// A quiet transaction still running is read again later each time
    /// (1 s, then 2 s, … at most 8 s after the last read), not every sweep.
    #[tokio::test]
    async fn a_quiet_transaction_is_read_again_less_and_less_often() {
        let txs = vec!["slow".to_string()];
        let state = in_flight(&txs, Duration::from_secs(1));
        let reads = std::sync::atomic::AtomicUsize::new(0);
        let running = |_tx: String| {
            reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async { read(SagaStatus::Running, Duration::from_millis(10)) }
        };
        for _ in 0..3 {
            sweep(&state, Duration::from_secs(60), 256, &running).await;
        }
        assert_eq!(
            reads.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "read once, then left for 1 s"
        );
        let recheck = |s: &Mutex<State>| s.lock().expect("state").in_flight["slow"].recheck;
        for (ago, then) in [
            (501, 1_000),
            (1_001, 2_000),
            (2_001, 4_000),
            (4_001, 8_000),
            (8_001, 8_000),
        ] {
            // As if the last read was `ago` ms before.
            if let Some(f) = state.lock().expect("state").in_flight.get_mut("slow") {
                f.checked = Instant::now().checked_sub(Duration::from_millis(ago));
            }
            sweep(&state, Duration::from_secs(60), 256, &running).await;
            assert_eq!(recheck(&state), Duration::from_millis(then));
        }
        assert_eq!(reads.load(std::sync::atomic::Ordering::Relaxed), 6);
    }

    /// Past its timeout a transaction is read once more: completed in time,
    /// it counts completed; final too late, still running, or unreadable,
    /// it counts timed out.
    #[tokio::test]
    async fn an_overdue_transaction_is_read_before_it_counts_as_timed_out() {
        let txs: Vec<String> = ["done", "late", "running", "unreadable"]
            .iter()
            .map(|t| t.to_string())
            .collect();
        let state = in_flight(&txs, Duration::from_secs(4));
        let reads = |tx: String| async move {
            match tx.as_str() {
                // Intended 4 s ago, timeout 2 s: final 1 s after its start.
                "done" => read(SagaStatus::Completed, Duration::from_secs(3)),
                // Final 3 s after its start.
                "late" => read(SagaStatus::Completed, Duration::from_secs(1)),
                "running" => read(SagaStatus::Running, Duration::from_secs(1)),
                _ => None,
            }
        };
        sweep(&state, Duration::from_secs(2), SWEEP_READS, reads).await;
        let s = state.lock().expect("state");
        assert_eq!((s.counts.completed, s.counts.timed_out), (1, 3));
        assert!(s.in_flight.is_empty());
        assert_eq!(s.errors.get("timed_out").map(|e| e.0), Some(3));
        // Kept outcomes name each transaction: timed out is `None`.
        let mut kept: Vec<(&str, Option<SagaStatus>)> = s
            .outcomes
            .iter()
            .flatten()
            .map(|o| (o.tx.as_str(), o.status))
            .collect();
        kept.sort_by_key(|(tx, _)| *tx);
        assert_eq!(
            kept,
            [
                ("done", Some(SagaStatus::Completed)),
                ("late", None),
                ("running", None),
                ("unreadable", None)
            ]
        );
    }
}
