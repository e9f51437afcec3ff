//! Workflow definitions: ordered steps, each run by a worker, with an
//! optional compensation, condition, timeout and retry policy.
//!
//! Built in code with [`WorkflowDef::builder`] or loaded from configuration;
//! [`WorkflowDef::validate`] checks names, worker references and conditions
//! and names the workflow, the step and the key in its errors.
//!
//! | module | owns |
//! |---|---|
//! | this file | [`WorkflowDef`], [`StepDef`], the builder, validation |
//! | [`retry`] | [`RetryPolicy`]: attempts and backoff with jitter |
//! | [`condition`] | [`Condition`]: a CEL expression over the workflow context |

pub mod condition;
pub mod retry;

use std::collections::HashSet;
use std::time::Duration;

pub use condition::{Condition, MAX_CONDITION_LEN};
pub use retry::RetryPolicy;

use crate::error::{Error, ErrorKind, Result};
use crate::validate;

/// Default time a step attempt may take before it is retried or failed.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// One step of a workflow.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StepDef {
    /// The step's name, unique in its workflow.
    pub name: String,
    /// The worker that runs it.
    pub worker: String,
    /// The worker that undoes it when a later step fails or the workflow is
    /// cancelled (run with the context as it was after this step).
    pub compensation: Option<String>,
    /// Runs the step only when true; a false condition skips it.
    pub condition: Option<Condition>,
    /// Start-to-close: how long one attempt may *run*, counted from the
    /// moment an executor starts it (time spent queued does not count).
    /// Running longer is a retryable failure.
    pub timeout: Duration,
    /// Schedule-to-start: how long an attempt may wait in the queue before
    /// an executor starts it. `None` (the default): as long as it takes, so
    /// a backlog drained later still runs each step once. When set, an
    /// attempt not started in time fails as timed out (retryable) without
    /// running, and one whose result has not come back within
    /// `queue_timeout + timeout` (no instance serves the worker, say) too.
    pub queue_timeout: Option<Duration>,
    /// Attempts and backoff, for the step and its compensation.
    pub retry: RetryPolicy,
}

impl StepDef {
    /// A step `name` run by `worker`, with the defaults (30 s timeout, 3 attempts).
    pub fn new(name: impl Into<String>, worker: impl Into<String>) -> Self {
        StepDef {
            name: name.into(),
            worker: worker.into(),
            compensation: None,
            condition: None,
            timeout: DEFAULT_STEP_TIMEOUT,
            queue_timeout: None,
            retry: RetryPolicy::default(),
        }
    }

    /// Sets the compensation worker.
    #[must_use]
    pub fn compensate_with(mut self, worker: impl Into<String>) -> Self {
        self.compensation = Some(worker.into());
        self
    }

    /// Sets the condition.
    #[must_use]
    pub fn when(mut self, condition: Condition) -> Self {
        self.condition = Some(condition);
        self
    }

    /// Sets the start-to-close timeout of one attempt ([`timeout`](Self::timeout)).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the schedule-to-start timeout ([`queue_timeout`](Self::queue_timeout)).
    #[must_use]
    pub fn queue_timeout(mut self, queue_timeout: Duration) -> Self {
        self.queue_timeout = Some(queue_timeout);
        self
    }

    /// Sets the retry policy.
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

/// A named, ordered list of steps.
#[derive(Debug, Clone)]
pub struct WorkflowDef {
    /// The workflow's name (what `execute` takes).
    pub name: String,
    /// The steps, run in order.
    pub steps: Vec<StepDef>,
}

impl WorkflowDef {
    /// Starts a definition.
    pub fn builder(name: impl Into<String>) -> WorkflowBuilder {
        WorkflowBuilder {
            def: WorkflowDef {
                name: name.into(),
                steps: Vec::new(),
            },
        }
    }

    /// Index of the step named `name`.
    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }

    /// Checks the definition; `has_worker` says whether a worker name is
    /// registered. Errors are `Config` and name the workflow, step and key.
    pub fn validate(&self, has_worker: &dyn Fn(&str) -> bool) -> Result<()> {
        let bad = |step: Option<&str>, key: &'static str, why: String| {
            let at = match step {
                Some(s) => format!("workflow {:?}, step {s:?}, {key}", self.name),
                None => format!("workflow {:?}, {key}", self.name),
            };
            let mut e = Error::new(ErrorKind::Config, format!("{at}: {why}"))
                .with_context("workflow", &self.name)
                .with_context("key", key);
            if let Some(s) = step {
                e = e.with_context("step", s);
            }
            e
        };
        validate::group(&self.name).map_err(|e| bad(None, "name", e.message().to_string()))?;
        if self.steps.is_empty() {
            return Err(bad(None, "steps", "a workflow needs at least one step".into()));
        }
        let mut seen = HashSet::new();
        for step in &self.steps {
            let s = Some(step.name.as_str());
            validate::group(&step.name).map_err(|e| bad(s, "name", e.message().to_string()))?;
            if !seen.insert(step.name.as_str()) {
                return Err(bad(s, "name", "duplicate step name".into()));
            }
            if !has_worker(&step.worker) {
                return Err(bad(s, "worker", format!("unknown worker {:?}", step.worker)));
            }
            if let Some(c) = &step.compensation
                && !has_worker(c)
            {
                return Err(bad(s, "compensation", format!("unknown worker {c:?}")));
            }
            if step.timeout.is_zero() {
                return Err(bad(s, "timeout", "must be positive".into()));
            }
            if step.queue_timeout.is_some_and(|q| q.is_zero()) {
                return Err(bad(s, "queue_timeout", "must be positive".into()));
            }
            step.retry.validate().map_err(|why| bad(s, "retry", why))?;
        }
        Ok(())
    }
}

/// Builds a [`WorkflowDef`].
#[derive(Debug)]
pub struct WorkflowBuilder {
    def: WorkflowDef,
}

impl WorkflowBuilder {
    /// Appends a step.
    #[must_use]
    pub fn step(mut self, step: StepDef) -> Self {
        self.def.steps.push(step);
        self
    }

    /// The definition (validated when registered with a runtime).
    pub fn build(self) -> WorkflowDef {
        self.def
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workers(name: &str) -> bool {
        ["a", "b", "undo-a"].contains(&name)
    }

    #[test]
    fn valid_definition_passes() {
        let wf = WorkflowDef::builder("orders")
            .step(StepDef::new("first", "a").compensate_with("undo-a"))
            .step(StepDef::new("second", "b").when(Condition::parse("context.amount > 10").expect("cel")))
            .build();
        wf.validate(&workers).expect("valid");
        assert_eq!(wf.step_index("second"), Some(1));
    }

    #[test]
    fn errors_name_workflow_step_and_key() {
        let wf = WorkflowDef::builder("orders")
            .step(StepDef::new("first", "a"))
            .step(StepDef::new("first", "b"))
            .build();
        let err = wf.validate(&workers).expect_err("duplicate");
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(
            err.message()
                .contains("workflow \"orders\", step \"first\", name: duplicate"),
            "{err}"
        );

        let wf = WorkflowDef::builder("orders")
            .step(StepDef::new("s", "nope"))
            .build();
        let err = wf.validate(&workers).expect_err("unknown worker");
        assert_eq!(err.context_value("key"), Some("worker"));
        assert!(err.message().contains("unknown worker \"nope\""), "{err}");

        let wf = WorkflowDef::builder("orders")
            .step(StepDef::new("s", "a").compensate_with("gone"))
            .build();
        assert_eq!(
            wf.validate(&workers).expect_err("comp").context_value("key"),
            Some("compensation")
        );
        assert!(WorkflowDef::builder("orders").build().validate(&workers).is_err());
    }
}
