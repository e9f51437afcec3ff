//! Public types of the orchestrator: identifiers, statuses, snapshots.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A transaction (one run of a workflow). Time-ordered (UUIDv7).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TransactionId(pub String);

impl TransactionId {
    /// A new id.
    pub fn new() -> Self {
        TransactionId(uuid::Uuid::now_v7().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TransactionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for TransactionId {
    fn from(s: &str) -> Self {
        TransactionId(s.to_string())
    }
}

/// Where a transaction is in its life.
///
/// ```text
/// running ──► completed
///    │
///    ├─(a step fails)──► compensating ──► compensated
///    │                        └──(a compensation fails)──► compensation_failed
///    ├─(a step fails, nothing to undo)──► failed
///    └─(cancel)──► compensating ──► cancelled
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaStatus {
    /// Steps are running.
    Running,
    /// Every step ran (or was skipped); the output is kept.
    Completed,
    /// A step failed and no completed step needed undoing.
    Failed,
    /// Completed steps are being undone, newest first.
    Compensating,
    /// A step failed and every completed step was undone.
    Compensated,
    /// Cancelled; every completed step was undone.
    Cancelled,
    /// A compensation itself failed (after its retries): needs a human.
    CompensationFailed,
}

impl SagaStatus {
    /// Whether the transaction has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, SagaStatus::Running | SagaStatus::Compensating)
    }

    /// A stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            SagaStatus::Running => "running",
            SagaStatus::Completed => "completed",
            SagaStatus::Failed => "failed",
            SagaStatus::Compensating => "compensating",
            SagaStatus::Compensated => "compensated",
            SagaStatus::Cancelled => "cancelled",
            SagaStatus::CompensationFailed => "compensation_failed",
        }
    }
}

impl fmt::Display for SagaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Forward step or compensation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// The step itself.
    Forward,
    /// Its compensation.
    Compensate,
}

/// One attempt of one step, as recorded in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// Step name.
    pub step: String,
    /// Forward or compensation.
    pub kind: StepKind,
    /// Attempt number (1-based).
    pub attempt: u32,
    /// Worker that ran it.
    pub worker: String,
    /// When it was dispatched (ms since the Unix epoch).
    pub started_ms: u64,
    /// When its result arrived (None while running).
    pub finished_ms: Option<u64>,
    /// `ok`, `skipped`, `timeout`, or the error.
    pub outcome: Option<String>,
}

/// What `status`/`wait` return.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaSnapshot {
    /// The transaction.
    pub tx: TransactionId,
    /// Its workflow.
    pub workflow: String,
    /// Where it is.
    pub status: SagaStatus,
    /// The step running now (forward or compensation), if any.
    pub current_step: Option<String>,
    /// The workflow's output (final context) once completed.
    pub output: Option<serde_json::Value>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Created (ms since the Unix epoch).
    pub created_ms: u64,
    /// Last change (ms since the Unix epoch).
    pub updated_ms: u64,
    /// Every attempt of every step, in order.
    pub history: Vec<AttemptRecord>,
    /// Running, and no attempt has finished yet: the first step is still
    /// queued (no instance has run it) or running. Shown as `pending`.
    #[serde(default)]
    pub pending: bool,
    /// Its W3C trace id (32 hex digits): every span of the transaction,
    /// on every instance, carries it (see [`crate::trace`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl SagaSnapshot {
    /// Time from creation to the last change.
    pub fn elapsed(&self) -> Duration {
        Duration::from_millis(self.updated_ms.saturating_sub(self.created_ms))
    }

    /// Time from creation to the end, or to `now_ms` while not final.
    pub fn age(&self, now_ms: u64) -> Duration {
        if self.status.is_final() {
            self.elapsed()
        } else {
            Duration::from_millis(now_ms.saturating_sub(self.created_ms))
        }
    }

    /// The status as people read it: `pending` for a running transaction
    /// none of whose attempts has finished yet.
    pub fn status_label(&self) -> &'static str {
        if self.pending && self.status == SagaStatus::Running {
            "pending"
        } else {
            self.status.as_str()
        }
    }
}

/// A page of [`Orchestrator::list`](super::Orchestrator::list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaPage {
    /// Transactions of this page (status, no history).
    pub items: Vec<SagaSnapshot>,
    /// Pass to get the next page; `None` at the end.
    pub cursor: Option<String>,
}
