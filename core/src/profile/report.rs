//! [`ProfileReport`]: the timings ranked by the time they took, each with
//! its share of the step path, and the recommendations that follow from
//! them (each names the setting to change and the figure behind it).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::Op;
use super::advice::{advise, ratio};
use super::histogram::Summary;

/// One timing: an operation of a component, for one label.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Timing {
    /// What was timed.
    #[serde(skip)]
    pub op: Op,
    /// Its component (`worker`, `store`, …).
    pub component: &'static str,
    /// Its operation (`instantiate`, `call`, …).
    pub operation: &'static str,
    /// Of what: a worker, a topic, a store call.
    pub label: String,
    /// How many were timed.
    pub count: u64,
    /// Their sum.
    #[serde(serialize_with = "micros")]
    pub total: Duration,
    /// `total / count`.
    #[serde(serialize_with = "micros")]
    pub mean: Duration,
    /// Median (within 25%).
    #[serde(serialize_with = "micros")]
    pub p50: Duration,
    /// 99th percentile (within 25%).
    #[serde(serialize_with = "micros")]
    pub p99: Duration,
    /// The longest.
    #[serde(serialize_with = "micros")]
    pub max: Duration,
    /// `total` over the step path's total (see [`ProfileReport::path_total`]).
    pub share: f64,
    /// The stage already counting this time, when it nests in one.
    pub within: Option<&'static str>,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl Timing {
    pub(super) fn new(op: Op, label: &str, s: Summary) -> Self {
        let mean = match u32::try_from(s.count) {
            Ok(n) if n > 0 => s.total / n,
            _ => Duration::from_secs_f64(s.total.as_secs_f64() / s.count.max(1) as f64),
        };
        Timing {
            op,
            component: op.component(),
            operation: op.operation(),
            label: label.to_string(),
            count: s.count,
            total: s.total,
            mean,
            p50: s.p50,
            p99: s.p99,
            max: s.max,
            share: 0.0,
            within: op.within(),
        }
    }

    /// `component:operation`.
    pub fn name(&self) -> String {
        format!("{}:{}", self.component, self.operation)
    }
}

/// The settings recommendations name, as the runtime has them.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Facts {
    /// Each worker's concurrency limit.
    pub max_concurrent: BTreeMap<String, usize>,
    /// Whether the store cache (`[cache]`) is on.
    pub cache: bool,
    /// Whether `[engine] local_dispatch` is on.
    pub local_dispatch: bool,
    /// The store backend's name (`memory`, `redis`, …): an in-memory
    /// store's calls are this process's CPU, not a round trip.
    pub store: String,
}

impl Facts {
    /// Facts with the cache and local dispatch settings, and the store's
    /// backend name.
    pub fn new(cache: bool, local_dispatch: bool, store: impl Into<String>) -> Self {
        Facts {
            cache,
            local_dispatch,
            store: store.into(),
            ..Facts::default()
        }
    }

    pub(super) fn remote_store(&self) -> bool {
        self.store != "memory"
    }

    /// Adds worker `name`'s concurrency limit.
    #[must_use]
    pub fn with_worker(mut self, name: impl Into<String>, max_concurrent: usize) -> Self {
        self.max_concurrent.insert(name.into(), max_concurrent);
        self
    }
}

/// What to change, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Recommendation {
    /// What it is about: `worker charge`, `store`, `queue m.results`.
    pub subject: String,
    /// The figure behind it.
    pub finding: String,
    /// The change to make.
    pub advice: String,
    /// The share of the step path it concerns (the ranking key).
    pub share: f64,
}

/// The profiler's report: timings ranked by total time, and
/// recommendations ranked by the time they concern.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ProfileReport {
    /// Whether the profiler was recording when the report was made.
    pub enabled: bool,
    /// Since it was first enabled or last reset (pauses included).
    #[serde(serialize_with = "micros")]
    pub window: Duration,
    /// The sum of the stages a step's time is made of (queue wait,
    /// dispatch, permit wait, call, coordinate): the
    /// denominator of every share. Rows that nest in a stage are not in it.
    #[serde(serialize_with = "micros")]
    pub path_total: Duration,
    /// Every timing, the largest total first.
    pub timings: Vec<Timing>,
    /// What to change, the most time concerned first.
    pub recommendations: Vec<Recommendation>,
}

impl ProfileReport {
    pub(super) fn new(mut timings: Vec<Timing>, window: Duration, enabled: bool, facts: &Facts) -> Self {
        let path_total: Duration = timings
            .iter()
            .filter(|t| t.within.is_none())
            .map(|t| t.total)
            .sum();
        for t in &mut timings {
            // Timer lag is a delay, not work: a share of the path means nothing.
            if t.op != Op::TimerLag {
                t.share = ratio(t.total, path_total);
            }
        }
        timings.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.label.cmp(&b.label)));
        let mut recommendations = advise(&timings, path_total, facts);
        recommendations.sort_by(|a, b| b.share.total_cmp(&a.share));
        ProfileReport {
            enabled,
            window,
            path_total,
            timings,
            recommendations,
        }
    }

    /// The stage that took the most time, if anything was recorded.
    pub fn bottleneck(&self) -> Option<&Timing> {
        self.timings.iter().find(|t| t.within.is_none())
    }

    /// The timing of `op` for `label`.
    pub fn timing(&self, op: Op, label: &str) -> Option<&Timing> {
        self.timings.iter().find(|t| t.op == op && t.label == label)
    }
}
