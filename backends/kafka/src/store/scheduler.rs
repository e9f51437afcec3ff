//! The timers kept with the store's keys ([`Scheduler`]): each key's
//! timer is part of its changelog records, so a timed compare-and-swap
//! writes value and timer in one record. Due timers are claimed by the
//! owner of their partition, in its writer (one claimer per partition);
//! every instance that advances transactions claims the due timers of the
//! partitions it owns, so an instance that advances none (a client, or
//! one that only runs steps) opens the store as a client's and owns none. Timer changes of keys owned elsewhere are
//! forwarded like any write.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use multiagents_core::scheduler::{DueTimer, Scheduler, SchedulerCapabilities, Settle, check_claim};
use multiagents_core::{Error, ErrorKind, Result, validate};
use tokio::sync::oneshot;

use super::Inner;
use super::decide::{TimerOp, Write};
use super::writer::{Job, Work};

/// How soon a timer consumer looks again when nothing is due: a claim
/// reads the local view first, so looking is cheap.
const POLL: Duration = Duration::from_millis(10);

/// The scheduler of one [`KafkaStore`](super::KafkaStore).
pub(crate) struct KafkaScheduler {
    inner: Arc<Inner>,
}

impl KafkaScheduler {
    pub(crate) fn new(inner: Arc<Inner>) -> KafkaScheduler {
        KafkaScheduler { inner }
    }

    async fn timer(&self, op_name: &'static str, key: &str, op: TimerOp) -> Result<bool> {
        validate::key(key).map_err(|e| e.with_operation(op_name))?;
        let write = Write::Timer {
            key: key.to_string(),
            op,
        };
        Ok(self.inner.write(op_name, write).await?.existed)
    }

    /// Claims up to `limit` due timers of `scope` in partition `p`, which
    /// this instance owns.
    async fn claim_in(
        &self,
        p: i32,
        scope: &str,
        now_ms: u64,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<DueTimer>> {
        const OP: &str = "kafka.scheduler.claim_due";
        let Some(jobs) = self.inner.owned.jobs(p) else {
            return Ok(Vec::new());
        };
        let (reply, answer) = oneshot::channel();
        let work = Work::Claim {
            scope: scope.to_string(),
            now_ms,
            limit,
            lease,
        };
        let limit = self.inner.core.forward_timeout;
        let asked = tokio::time::timeout(limit, async {
            jobs.send(Job {
                work,
                request: None,
                reply,
            })
            .await
            .ok()?;
            Some(answer.await)
        })
        .await;
        match asked {
            Ok(Some(Ok(result))) => Ok(result.map_err(|e| e.with_operation(OP))?.timers),
            // Revoked meanwhile: its new owner claims them.
            Ok(None) => Ok(Vec::new()),
            Ok(Some(Err(_))) => Err(Error::new(
                ErrorKind::Unavailable,
                format!("kafka store: partition {p}'s writer stopped while claiming timers"),
            )
            .with_operation(OP)),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("kafka store: partition {p}'s writer did not claim timers within {limit:?} (what it claimed fires again after its lease)"),
            )
            .with_operation(OP)),
        }
    }
}

#[async_trait]
impl Scheduler for KafkaScheduler {
    fn capabilities(&self) -> SchedulerCapabilities {
        SchedulerCapabilities::new("kafka", POLL)
    }

    async fn schedule(&self, key: &str, due_ms: u64) -> Result<()> {
        self.timer("kafka.scheduler.schedule", key, TimerOp::Schedule(due_ms))
            .await
            .map(drop)
    }

    async fn cancel(&self, key: &str) -> Result<bool> {
        self.timer("kafka.scheduler.cancel", key, TimerOp::Cancel).await
    }

    async fn claim_due(
        &self,
        scope: &str,
        now_ms: u64,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<DueTimer>> {
        const OP: &str = "kafka.scheduler.claim_due";
        check_claim(limit, lease, OP)?;
        self.inner.check_open(OP)?;
        // Only partitions the view shows due timers in are asked.
        let mut due: Vec<(u64, i32)> = {
            let view = self.inner.core.view(OP)?;
            self.inner
                .owned
                .partitions()
                .into_iter()
                .filter_map(|p| view.due(p, scope, now_ms, 1).first().map(|(_, t)| (t.due_ms, p)))
                .collect()
        };
        due.sort_unstable();
        let mut claimed = Vec::new();
        for (_, p) in due {
            let left = limit - claimed.len();
            if left == 0 {
                break;
            }
            match self.claim_in(p, scope, now_ms, left, lease).await {
                Ok(timers) => claimed.extend(timers),
                // What was claimed already is handed out (dropping it would
                // delay it by a lease); the error waits for the next call.
                Err(e) if !claimed.is_empty() => {
                    tracing::warn!(error = %e, partition = p, "kafka store: claiming due timers");
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        claimed.sort_by_key(|t| t.due_ms);
        Ok(claimed)
    }

    async fn settle(&self, key: &str, claim: u64, how: Settle) -> Result<bool> {
        self.timer("kafka.scheduler.settle", key, TimerOp::Settle { claim, how })
            .await
    }

    async fn move_if(&self, key: &str, from_ms: u64, to_ms: u64) -> Result<bool> {
        self.timer("kafka.scheduler.move_if", key, TimerOp::MoveIf { from_ms, to_ms })
            .await
    }

    async fn pending(&self, scope: &str) -> Result<u64> {
        Ok(self.inner.core.view("kafka.scheduler.pending")?.pending(scope))
    }

    async fn next_due(&self, scope: &str) -> Result<Option<u64>> {
        Ok(self.inner.core.view("kafka.scheduler.next_due")?.next_due(scope))
    }
}
