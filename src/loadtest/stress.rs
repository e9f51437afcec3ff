//! The stress ramp: load tests at rising rates until one fails its
//! criteria; the knee is the highest rate that met them.

use std::time::Duration;

use multiagents_core::{Error, ErrorKind, Result};
use serde::Serialize;

use super::{Breach, LoadReport, LoadSpec, Progress, Threshold, run};
use crate::Runtime;

/// A ramp: `base` (workflow, input, concurrency, timeout) at `from`,
/// `from + step`, … up to `max` workflows/s, `step_duration` each.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StressSpec {
    /// What each step runs (its rate and duration are the ramp's).
    pub base: LoadSpec,
    /// The first rate.
    pub from: f64,
    /// The increase per step.
    pub step: f64,
    /// The last rate tried.
    pub max: f64,
    /// How long each step lasts.
    pub step_duration: Duration,
    /// A step whose error rate exceeds this fails (default 0.10, the
    /// predecessor's).
    pub error_limit: f64,
    /// A step that breaches one of these fails too.
    pub thresholds: Vec<Threshold>,
}

impl StressSpec {
    /// A ramp of `base` from `from` by `step` to `max`, `step_duration`
    /// each, stopping above 10% errors.
    pub fn new(base: LoadSpec, from: f64, step: f64, max: f64, step_duration: Duration) -> Self {
        StressSpec {
            base,
            from,
            step,
            max,
            step_duration,
            error_limit: 0.10,
            thresholds: Vec::new(),
        }
    }

    /// Fails a step above `limit` errors (a fraction).
    #[must_use]
    pub fn with_error_limit(mut self, limit: f64) -> Self {
        self.error_limit = limit;
        self
    }

    /// Fails a step that breaches one of `thresholds`.
    #[must_use]
    pub fn with_thresholds(mut self, thresholds: Vec<Threshold>) -> Self {
        self.thresholds = thresholds;
        self
    }

    fn validate(&self) -> Result<()> {
        let bad =
            |why: String| Err(Error::new(ErrorKind::InvalidInput, why).with_operation("loadtest.stress"));
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.from) || !positive(self.step) || !positive(self.max) {
            return bad(format!(
                "--from, --step and --max must be positive rates (got {}, {}, {})",
                self.from, self.step, self.max
            ));
        }
        if self.max < self.from {
            return bad(format!("--max {} is below --from {}", self.max, self.from));
        }
        if (self.max - self.from) / self.step > 1_000.0 {
            return bad("more than 1 000 steps: raise --step".into());
        }
        if !(self.error_limit.is_finite() && (0.0..=1.0).contains(&self.error_limit)) {
            return bad(format!(
                "the error limit {} is not a fraction in [0, 1]",
                self.error_limit
            ));
        }
        Ok(())
    }
}

/// One step of a ramp.
#[derive(Debug, Clone, Serialize)]
pub struct StressStep {
    /// Its rate.
    pub rate: f64,
    /// Whether it met the criteria.
    pub passed: bool,
    /// Why not.
    pub breaches: Vec<Breach>,
    /// What it measured.
    pub report: LoadReport,
}

/// What a ramp found.
#[derive(Debug, Clone, Serialize)]
pub struct StressReport {
    /// The highest rate that met the criteria (`None`: not even the first).
    pub knee: Option<f64>,
    /// Why the ramp stopped.
    pub stopped: String,
    /// Every step run.
    pub steps: Vec<StressStep>,
}

/// Runs the ramp. `progress` gets each step's progress and rate.
///
/// # Errors
/// As [`run`], and `InvalidInput` for a bad ramp.
pub async fn stress(
    runtime: &Runtime,
    spec: &StressSpec,
    progress: &(dyn Fn(f64, &Progress) + Send + Sync),
) -> Result<StressReport> {
    spec.validate()?;
    let mut steps = Vec::new();
    let mut knee = None;
    let mut rate = spec.from;
    while rate <= spec.max + 1e-9 {
        let mut base = spec.base.clone();
        base.rate = rate;
        base.duration = spec.step_duration;
        let report = run(runtime, &base, &|p: &Progress| progress(rate, p)).await?;
        let mut breaches = report.breaches(&spec.thresholds);
        if report.error_rate > spec.error_limit {
            breaches.insert(
                0,
                Breach {
                    threshold: format!("errors<={:.1}%", spec.error_limit * 100.0),
                    actual: format!("{:.2}%", report.error_rate * 100.0),
                },
            );
        }
        let passed = breaches.is_empty();
        let why = breaches
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        steps.push(StressStep {
            rate,
            passed,
            breaches,
            report,
        });
        if !passed {
            return Ok(StressReport {
                knee,
                stopped: format!("at {rate:.0}/s: {why}"),
                steps,
            });
        }
        knee = Some(rate);
        rate += spec.step;
    }
    Ok(StressReport {
        knee,
        stopped: format!("every step up to --max {:.0}/s met the criteria", spec.max),
        steps,
    })
}
