//! `[[workflows]]` and their `[[workflows.steps]]`, turned into
//! [`WorkflowDef`]s.

use std::time::Duration;

use multiagents_core::workflow::{Condition, DEFAULT_STEP_TIMEOUT, RetryPolicy, StepDef, WorkflowDef};
use serde::Deserialize;

use super::source::{Invalid, KeyPath};
use super::values::{duration, opt_duration};

/// One workflow: a name and its ordered steps.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WorkflowConfig {
    /// The name `execute`/`submit` take.
    pub name: String,
    /// The steps, run in order.
    #[serde(default)]
    pub steps: Vec<StepConfig>,
}

impl WorkflowConfig {
    /// A workflow with `steps`.
    pub fn new(name: impl Into<String>, steps: Vec<StepConfig>) -> Self {
        WorkflowConfig {
            name: name.into(),
            steps,
        }
    }

    /// The definition; a condition that does not parse is a `Config` error
    /// naming the workflow and the step.
    pub fn to_def(&self) -> multiagents_core::Result<WorkflowDef> {
        self.build(0).map_err(Invalid::into_error)
    }

    /// Builds the definition; `index` is this workflow's place in the file
    /// (for error positions).
    pub(crate) fn build(&self, index: usize) -> Result<WorkflowDef, Invalid> {
        let (def, bad) = self.build_checked(index);
        match bad.into_iter().next() {
            None => Ok(def),
            Some(first) => Err(first),
        }
    }

    /// The definition, each step that has a condition that does not parse
    /// built without it, and those conditions' problems (so the rest of the
    /// workflow can still be checked).
    pub(crate) fn build_checked(&self, index: usize) -> (WorkflowDef, Vec<Invalid>) {
        let mut bad = Vec::new();
        let mut builder = WorkflowDef::builder(self.name.clone());
        for (i, step) in self.steps.iter().enumerate() {
            let at = |key: &str| {
                KeyPath::of(&["workflows"])
                    .index(index)
                    .key("steps")
                    .index(i)
                    .key(key)
            };
            let mut def = StepDef::new(step.name.clone(), step.worker.clone())
                .timeout(step.timeout.unwrap_or(DEFAULT_STEP_TIMEOUT));
            if let Some(q) = step.queue_timeout {
                def = def.queue_timeout(q);
            }
            if let Some(c) = &step.compensation {
                def = def.compensate_with(c.clone());
            }
            if let Some(expr) = &step.condition {
                match Condition::parse(expr) {
                    Ok(condition) => def = def.when(condition),
                    Err(e) => bad.push(Invalid::new(
                        at("condition"),
                        format!(
                            "workflow {:?}, step {:?}, condition: {}",
                            self.name,
                            step.name,
                            e.message()
                        ),
                    )),
                }
            }
            if let Some(retry) = &step.retry {
                def = def.retry(retry.policy());
            }
            builder = builder.step(def);
        }
        (builder.build(), bad)
    }

    /// Maps a `Config` error of [`WorkflowDef::validate`] (context `step`,
    /// `key`) to the key path it concerns.
    pub(crate) fn locate(&self, index: usize, error: multiagents_core::Error) -> Invalid {
        let base = KeyPath::of(&["workflows"]).index(index);
        let key = error.context_value("key").unwrap_or("").to_string();
        let step = error
            .context_value("step")
            .and_then(|s| self.steps.iter().rposition(|st| st.name == s));
        let path = match step {
            Some(i) => base.key("steps").index(i).key(key),
            None if key == "name" => base.key("name"),
            None => base.key("steps"),
        };
        Invalid::wrap(path, error)
    }
}

/// One step of a workflow.
///
/// ```toml
/// [[workflows.steps]]
/// name = "charge"
/// worker = "charge-payment"
/// compensation = "refund-payment"
/// timeout = "10s"          # start-to-close: one run, once started
/// queue_timeout = "1m"      # optional schedule-to-start
/// retry = { max_attempts = 3, backoff = "100ms" }
/// condition = "context.total > 0"
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StepConfig {
    /// Unique in its workflow.
    pub name: String,
    /// The worker that runs it.
    pub worker: String,
    /// The worker that undoes it when a later step fails or the workflow is
    /// cancelled.
    #[serde(default)]
    pub compensation: Option<String>,
    /// A CEL expression over `input` and `context`; the step is skipped when
    /// it is false.
    #[serde(default)]
    pub condition: Option<String>,
    /// Start-to-close: how long one attempt may run once an executor has
    /// started it (default `30s`; time in the queue does not count).
    #[serde(default, with = "opt_duration")]
    pub timeout: Option<Duration>,
    /// Schedule-to-start: how long an attempt may wait in the queue
    /// (default: unbounded). See [`StepDef::queue_timeout`].
    #[serde(default, with = "opt_duration")]
    pub queue_timeout: Option<Duration>,
    /// Attempts and backoff (default 3 attempts, `100ms` doubling).
    #[serde(default)]
    pub retry: Option<RetryConfig>,
}

impl StepConfig {
    /// A step `name` run by `worker`.
    pub fn new(name: impl Into<String>, worker: impl Into<String>) -> Self {
        StepConfig {
            name: name.into(),
            worker: worker.into(),
            compensation: None,
            condition: None,
            timeout: None,
            queue_timeout: None,
            retry: None,
        }
    }

    /// Sets the compensation worker.
    #[must_use]
    pub fn compensate_with(mut self, worker: impl Into<String>) -> Self {
        self.compensation = Some(worker.into());
        self
    }

    /// Sets the condition (CEL).
    #[must_use]
    pub fn when(mut self, condition: impl Into<String>) -> Self {
        self.condition = Some(condition.into());
        self
    }
}

/// A step's retry policy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Attempts including the first (1 = no retry).
    pub max_attempts: u32,
    /// Wait before the second attempt (default `100ms`).
    #[serde(default = "default_backoff", with = "duration")]
    pub backoff: Duration,
    /// Longest wait between attempts (default `10s`).
    #[serde(default, with = "opt_duration")]
    pub max_backoff: Option<Duration>,
    /// Growth per attempt (default 2).
    #[serde(default)]
    pub multiplier: Option<f64>,
    /// Randomise waits (default true).
    #[serde(default)]
    pub jitter: Option<bool>,
}

fn default_backoff() -> Duration {
    RetryPolicy::default().initial_backoff
}

impl RetryConfig {
    /// The policy.
    pub fn policy(&self) -> RetryPolicy {
        let mut p = RetryPolicy::attempts(self.max_attempts, self.backoff);
        p.max_backoff = self.max_backoff.unwrap_or(p.max_backoff.max(self.backoff));
        if let Some(m) = self.multiplier {
            p.multiplier = m;
        }
        if let Some(j) = self.jitter {
            p.jitter = j;
        }
        p
    }
}
