//! [`Call`]: which step command a `handle` call serves.

/// Identifies the step command being served: the WIT `call-info` record.
///
/// Use [`transaction_id`](Call::transaction_id) (plus the step) as the key of
/// idempotency records: a command can be delivered more than once, and a
/// compensation runs under the same transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Call {
    /// The saga (workflow run) this call belongs to; stable across its steps,
    /// retries and compensations.
    pub transaction_id: String,
    /// The name of the workflow definition.
    pub workflow: String,
    /// The name of the step (or compensation step) being run.
    pub step: String,
    /// 1 for the first attempt of this step, +1 per retry. A redelivery may
    /// repeat an attempt number.
    pub attempt: u32,
}

impl Call {
    /// A call description, e.g. to invoke a handler directly in a test.
    pub fn new(
        transaction_id: impl Into<String>,
        workflow: impl Into<String>,
        step: impl Into<String>,
        attempt: u32,
    ) -> Self {
        Self {
            transaction_id: transaction_id.into(),
            workflow: workflow.into(),
            step: step.into(),
            attempt,
        }
    }

    /// `true` on the first attempt (`attempt <= 1`).
    pub fn is_first_attempt(&self) -> bool {
        self.attempt <= 1
    }
}

impl From<crate::bindings::CallInfo> for Call {
    fn from(c: crate::bindings::CallInfo) -> Self {
        Self {
            transaction_id: c.transaction_id,
            workflow: c.workflow,
            step: c.step,
            attempt: c.attempt,
        }
    }
}

impl From<Call> for crate::bindings::CallInfo {
    fn from(c: Call) -> Self {
        Self {
            transaction_id: c.transaction_id,
            workflow: c.workflow,
            step: c.step,
            attempt: c.attempt,
        }
    }
}
