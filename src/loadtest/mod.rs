//! Load tests: open-loop load at a fixed arrival rate against a
//! [`Runtime`], latency free of coordinated omission, and the stress ramp
//! that finds the highest rate meeting the thresholds (`multiagents
//! loadtest`).
//!
//! # How it measures
//! * **Open loop.** Submission `i` is *intended* at `start + i / rate`,
//!   whatever happened to the ones before. Its latency runs from that
//!   intended time to the transaction's final state, so a stalled system is
//!   charged for the submissions it delayed (wrk2's and oha's correction).
//!   tokio's timer wakes up to about a millisecond late on its own, so a
//!   submission made within 2 ms of its due time counts from when it was
//!   made; later than that, from its due time. The service time (from each
//!   actual submission) is reported beside it.
//!   `concurrency` bounds the transactions in flight; a submission waiting
//!   for a slot is late, and its lateness counts.
//! * **Completion is learned reliably.** Lifecycle events (at most once)
//!   give the fast path; a sweep reads the state of every transaction not
//!   heard of for a moment, and takes its final write's time. So a run on a
//!   cluster (`submit_only`) sees every outcome even when events are lost.
//!   Its reads per sweep scale with the rate (bounded), and a transaction
//!   past its `timeout` is read once more before it counts as timed out.
//! * **Errors** are everything that did not complete: submissions refused
//!   (by kind, e.g. `overloaded`), transactions that failed, were
//!   compensated or cancelled, and those not final within `timeout`.
//!
//! | module | owns |
//! |---|---|
//! | this file | [`LoadSpec`], [`run`], [`LoadReport`], [`TxOutcome`] |
//! | `track` | the transactions in flight and their outcomes |
//! | [`input`] | [`InputTemplate`]: per-submission inputs (`{{n}}`, `{{rand}}`, `{{uuid}}`) |
//! | [`threshold`] | [`Threshold`]: `p99<50ms`, `errors<1%`, `rate>=500` |
//! | `stress` | [`stress`]: the ramp and its knee |

pub mod input;
mod stress;
pub mod threshold;
mod track;

use std::sync::Arc;
use std::time::{Duration, Instant};

use multiagents_core::orchestrator::SagaStatus;
use multiagents_core::{Error, ErrorKind, Result};
use serde::Serialize;

pub use input::InputTemplate;
pub use stress::{StressReport, StressSpec, StressStep, stress};
pub use threshold::{Breach, Threshold};

use crate::Runtime;
use track::Tracker;

/// One load test: `rate` submissions of `workflow` per second for
/// `duration`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoadSpec {
    /// The workflow to start.
    pub workflow: String,
    /// Submissions per second (the arrival rate).
    pub rate: f64,
    /// How long to submit.
    pub duration: Duration,
    /// Most transactions in flight at once (default 10 000).
    pub concurrency: usize,
    /// Inputs (default `{}`).
    pub input: InputTemplate,
    /// A transaction not final this long after its intended start counts
    /// as timed out (default 30 s).
    pub timeout: Duration,
    /// Keep each transaction's id and outcome in [`LoadReport::outcomes`]
    /// (default off: a history checker wants them, a load test does not).
    pub keep_outcomes: bool,
}

impl LoadSpec {
    /// `rate` submissions of `workflow` per second for `duration`.
    pub fn new(workflow: impl Into<String>, rate: f64, duration: Duration) -> Self {
        LoadSpec {
            workflow: workflow.into(),
            rate,
            duration,
            concurrency: 10_000,
            input: InputTemplate::default(),
            timeout: Duration::from_secs(30),
            keep_outcomes: false,
        }
    }

    /// At most `n` transactions in flight.
    #[must_use]
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Inputs from `input`.
    #[must_use]
    pub fn with_input(mut self, input: InputTemplate) -> Self {
        self.input = input;
        self
    }

    /// Transactions not final within `timeout` count as timed out.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Keeps each transaction's outcome in [`LoadReport::outcomes`].
    #[must_use]
    pub fn with_outcomes(mut self) -> Self {
        self.keep_outcomes = true;
        self
    }

    /// Checks the numbers; `InvalidInput` naming the one that is wrong.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(Error::new(ErrorKind::InvalidInput, why).with_operation("loadtest"));
        if !(self.rate.is_finite() && self.rate >= 0.01) {
            return bad(format!(
                "the rate must be a positive number of workflows/s (at least 0.01), not {}",
                self.rate
            ));
        }
        if self.duration.is_zero() {
            return bad("the duration must not be zero".into());
        }
        if self.concurrency == 0 {
            return bad("the concurrency must be at least 1".into());
        }
        if self.timeout.is_zero() {
            return bad("the timeout must not be zero".into());
        }
        let total = self.rate * self.duration.as_secs_f64();
        if total > 100_000_000.0 {
            return bad(format!(
                "{total:.0} submissions is more than one run takes (100 000 000)"
            ));
        }
        Ok(())
    }
}

/// Latency percentiles, from intended start to final state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    #[serde(serialize_with = "ms")]
    pub p50: Duration,
    /// 90th percentile.
    #[serde(serialize_with = "ms")]
    pub p90: Duration,
    /// 95th percentile.
    #[serde(serialize_with = "ms")]
    pub p95: Duration,
    /// 99th percentile.
    #[serde(serialize_with = "ms")]
    pub p99: Duration,
    /// 99.9th percentile.
    #[serde(serialize_with = "ms")]
    pub p999: Duration,
    /// The largest.
    #[serde(serialize_with = "ms")]
    pub max: Duration,
}

impl Latency {
    /// The percentiles of a histogram of microseconds.
    fn of(h: &hdrhistogram::Histogram<u64>) -> Self {
        let q = |q: f64| quantile(h, q);
        Latency {
            p50: q(0.50),
            p90: q(0.90),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
            max: if h.is_empty() {
                Duration::ZERO
            } else {
                Duration::from_micros(h.max())
            },
        }
    }
}

fn ms<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

/// Errors of one kind, with one example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorGroup {
    /// `overloaded`, `not_found`, … for refused submissions; `failed`,
    /// `compensated`, `cancelled`, `compensation_failed`, `timed_out` for
    /// transactions.
    pub kind: String,
    /// How many.
    pub count: u64,
    /// One message of that kind.
    pub sample: String,
}

/// What a load test measured. Latencies in JSON are milliseconds.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct LoadReport {
    /// The workflow.
    pub workflow: String,
    /// The arrival rate asked for (per second).
    pub target_rate: f64,
    /// Submissions made.
    pub sent: u64,
    /// Submissions refused (not started).
    pub rejected: u64,
    /// Transactions completed.
    pub completed: u64,
    /// Transactions failed (or whose compensation failed).
    pub failed: u64,
    /// Transactions compensated.
    pub compensated: u64,
    /// Transactions cancelled.
    pub cancelled: u64,
    /// Transactions not final within the timeout.
    pub timed_out: u64,
    /// Final transactions (any outcome) per second, from the first intended
    /// start to the last outcome.
    pub throughput: f64,
    /// Completed transactions per second over the same time (what `rate`
    /// thresholds check).
    pub completed_rate: f64,
    /// Not completed / sent.
    pub error_rate: f64,
    /// Latency of the final transactions and of those that timed out
    /// (counted at the timeout), from each submission's intended start.
    pub latency: Latency,
    /// The same from each submission's actual start: the service time a
    /// closed-loop tool reports. Where it is much lower than `latency`,
    /// submissions were held back (by the system, the `concurrency` bound
    /// or the generator's timer, whose resolution is a millisecond).
    pub service: Latency,
    /// Errors by kind, most frequent first.
    pub errors: Vec<ErrorGroup>,
    /// From the first intended start to the last outcome, in seconds.
    pub elapsed_s: f64,
    /// With [`LoadSpec::with_outcomes`]: every accepted transaction and how
    /// it ended, in the order the outcomes were learned (empty otherwise).
    #[serde(skip)]
    pub outcomes: Vec<TxOutcome>,
    #[serde(skip)]
    histogram: Option<Arc<hdrhistogram::Histogram<u64>>>,
}

impl LoadReport {
    /// The latency at quantile `q` (0.99 for p99; zero without samples).
    pub fn quantile(&self, q: f64) -> Duration {
        self.histogram.as_ref().map_or(Duration::ZERO, |h| quantile(h, q))
    }

    /// The thresholds `report` does not meet.
    pub fn breaches(&self, thresholds: &[Threshold]) -> Vec<Breach> {
        thresholds.iter().filter_map(|t| t.check(self)).collect()
    }
}

/// The latency at quantile `q` of a histogram of microseconds (zero
/// without samples).
fn quantile(h: &hdrhistogram::Histogram<u64>, q: f64) -> Duration {
    if h.is_empty() {
        Duration::ZERO
    } else {
        Duration::from_micros(h.value_at_quantile(q))
    }
}

/// How one accepted transaction of a load test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TxOutcome {
    /// Its id.
    pub tx: String,
    /// Its final status; `None` when it was not final within the timeout.
    pub status: Option<SagaStatus>,
}

/// How a run stands, for a progress display (about 4 times a second).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Progress {
    /// Since the first intended start.
    pub elapsed: Duration,
    /// Submissions made.
    pub sent: u64,
    /// Outcomes known (any).
    pub done: u64,
    /// Of those, not completed (and refused submissions).
    pub errors: u64,
    /// p99 so far.
    pub p99: Duration,
    /// Outcomes per second over the last interval.
    pub rate: f64,
}

/// How late the generator may wake for a submission before the lateness
/// is charged to it (the timer's own resolution is a millisecond).
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// Runs `spec` against `runtime` and reports. `progress` is called about 4
/// times a second.
///
/// # Errors
/// `InvalidInput` for a bad spec; `NotFound` for an unknown workflow
/// (checked before anything is sent). Submissions the runtime refuses
/// (`Closed`, `Overloaded`, …) are outcomes of the report, not errors.
pub async fn run(
    runtime: &Runtime,
    spec: &LoadSpec,
    progress: &(dyn Fn(&Progress) + Send + Sync),
) -> Result<LoadReport> {
    spec.validate()?;
    if !runtime.workflows().contains(&spec.workflow) {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "no workflow {:?} in this configuration (it has: {})",
                spec.workflow,
                runtime.workflows().join(", ")
            ),
        )
        .with_operation("loadtest"));
    }
    let tracker = Tracker::start(runtime, spec).await?;
    let total = (spec.rate * spec.duration.as_secs_f64()).round().max(1.0) as u64;
    let period = Duration::from_secs_f64(1.0 / spec.rate);
    let slots = Arc::new(tokio::sync::Semaphore::new(spec.concurrency));
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut shown = tokio::time::Instant::now();
    let mut last_done = 0;
    for i in 0..total {
        let due = start + period.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        // tokio's timer wakes up to about a millisecond late on its own: a
        // submission made within `TIMER_SLACK` of its due time counts from
        // when it was made; one made later counts from its due time (the
        // generator was held back: by a stall, or by the slots).
        let woke = tokio::time::Instant::now();
        let intended = if woke.saturating_duration_since(due) <= TIMER_SLACK {
            woke
        } else {
            due
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (rt, tracker2, workflow) = (runtime.clone(), tracker.clone(), spec.workflow.clone());
        let input = spec.input.render(i);
        let intended = intended.into_std();
        let limit = spec.timeout;
        tokio::spawn(async move {
            let sent = Instant::now();
            match tokio::time::timeout(limit, rt.execute(&workflow, input)).await {
                Ok(Ok(tx)) => tracker2.started(tx.0, intended, sent, slot),
                Ok(Err(e)) => tracker2.refused(&e),
                Err(_) => tracker2.refused(
                    &Error::new(
                        ErrorKind::Timeout,
                        format!("the submission did not return within {limit:?}"),
                    )
                    .with_operation("execute"),
                ),
            }
        });
        if shown.elapsed() >= Duration::from_millis(250) {
            last_done = report_progress(&tracker, start.into_std(), shown.elapsed(), last_done, progress);
            shown = tokio::time::Instant::now();
        }
    }
    // Every submission made; wait for their outcomes (the sweep times out
    // the stragglers).
    while !tracker.settled(total) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if shown.elapsed() >= Duration::from_millis(250) {
            last_done = report_progress(&tracker, start.into_std(), shown.elapsed(), last_done, progress);
            shown = tokio::time::Instant::now();
        }
    }
    report_progress(&tracker, start.into_std(), shown.elapsed(), last_done, progress);
    Ok(tracker.finish(spec, start.into_std()))
}

fn report_progress(
    tracker: &Tracker,
    start: Instant,
    since: Duration,
    last_done: u64,
    progress: &(dyn Fn(&Progress) + Send + Sync),
) -> u64 {
    let mut p = tracker.progress(start);
    p.rate = p.done.saturating_sub(last_done) as f64 / since.as_secs_f64().max(1e-3);
    progress(&p);
    p.done
}
