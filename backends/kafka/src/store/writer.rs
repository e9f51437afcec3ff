//! The single writer of one owned partition: it claims the partition (a
//! new epoch), then takes writes in batches: each batch is decided
//! against the view ([`batch`](super::batch), by the rules of
//! [`decide`](super::decide)), appended, read back, and answered only for
//! what the fold accepted. It also claims the
//! partition's due timers, and writes the tombstones of expired keys.
//!
//! A batch's later writes see its earlier ones (an overlay), so writes to
//! one key in one batch chain correctly. After a failed append the writer
//! reads a barrier before its next batch, so it never decides on a view
//! that lacks records it may have written.

use std::sync::Arc;
use std::time::Duration;

use multiagents_core::{Error, ErrorKind, Result};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Core;
use super::batch::Batch;
use super::decide::{Done, Write};
use super::record::Change;

/// What a writer is asked to do.
pub(crate) enum Work {
    Write(Write),
    /// Claim up to `limit` due timers of `scope`, each for `lease`.
    Claim {
        scope: String,
        now_ms: u64,
        limit: usize,
        lease: Duration,
    },
}

/// A forwarded write's id (`<member>/<rid>`) and deadline.
#[derive(Debug, Clone)]
pub(crate) struct Forwarded {
    pub(crate) id: String,
    pub(crate) deadline_ms: u64,
}

/// Work, the forwarded request it comes from (if it does), and where to
/// answer.
pub(crate) struct Job {
    pub(crate) work: Work,
    pub(crate) request: Option<Forwarded>,
    pub(crate) reply: oneshot::Sender<Result<Done>>,
}

/// Most writes decided and appended as one batch.
const BATCH: usize = 512;
/// How often expired keys are looked for.
const SWEEP: Duration = Duration::from_secs(1);
/// How long a fenced writer waits before it claims its partition again.
const REFENCE: Duration = Duration::from_millis(200);

/// Claims partition `p` for `member`, then writes until `revoked` fires or
/// `jobs` closes; a writer the fold fences claims again.
pub(crate) async fn run(
    core: Arc<Core>,
    p: i32,
    member: String,
    mut jobs: mpsc::Receiver<Job>,
    revoked: CancellationToken,
) {
    let mut sweep = tokio::time::interval(SWEEP);
    // Claims, writes until fenced (another writer claimed the partition),
    // and claims again while the partition is still this instance's: the
    // other claimant is a writer that was revoked and not yet told, and
    // its next batch is refused in turn.
    while let Some(epoch) = claim(&core, p, &member, &revoked).await {
        tracing::debug!(partition = p, epoch, %member, "kafka store: partition claimed");
        let mut w = Writer {
            core: core.clone(),
            p,
            epoch,
            seq: 0,
            dirty: false,
        };
        loop {
            let mut batch = Vec::new();
            tokio::select! {
                biased;
                () = revoked.cancelled() => return,
                job = jobs.recv() => match job {
                    Some(job) => batch.push(job),
                    None => return,
                },
                _ = sweep.tick() => {}
            }
            while batch.len() < BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            if !w.write(batch).await {
                tracing::warn!(
                    partition = p,
                    epoch,
                    "kafka store: another writer claimed the partition; claiming it again"
                );
                break;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(REFENCE) => {}
            () = revoked.cancelled() => return,
        }
    }
}

/// Appends a claim of the next epoch until one is accepted (read back as
/// the partition's epoch) or `revoked` fires.
async fn claim(core: &Core, p: i32, member: &str, revoked: &CancellationToken) -> Option<u64> {
    let mut backoff = Duration::from_millis(50);
    while !revoked.is_cancelled() {
        let epoch = core.view.read().map(|v| v.owner(p).0 + 1).unwrap_or(1);
        let claim = Change::Claim {
            epoch,
            member: member.to_string(),
        };
        let result = async {
            let offsets = super::changelog::append(&core.producer, &core.changelog, p, &[claim]).await?;
            let offset = offsets.first().copied().unwrap_or_default();
            core.progress.past(p, offset, core.timeout).await?;
            // Ours only if the fold accepted this very record (another
            // claimant may have picked the same epoch first).
            Ok::<_, Error>(core.view.read().is_ok_and(|v| v.claim_accepted(p, offset)))
        }
        .await;
        match result {
            Ok(true) if !revoked.is_cancelled() => return Some(epoch),
            Ok(true) => return None,
            Ok(false) => backoff = Duration::from_millis(10),
            Err(e) => {
                tracing::warn!(error = %e, partition = p, "kafka store: claiming a partition; retrying")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = revoked.cancelled() => return None,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
    None
}

fn now_ms() -> u64 {
    multiagents_core::orchestrator::now_ms()
}

/// One claimed partition's writer (its batches are decided in
/// [`batch`](super::batch)).
pub(super) struct Writer {
    pub(super) core: Arc<Core>,
    pub(super) p: i32,
    pub(super) epoch: u64,
    pub(super) seq: u64,
    /// An append failed: read a barrier before deciding again.
    pub(super) dirty: bool,
}

impl Writer {
    /// Decides, appends and answers `jobs` (and expires what is due).
    /// `false` when the partition is no longer this writer's.
    async fn write(&mut self, jobs: Vec<Job>) -> bool {
        if self.dirty {
            match self.barrier().await {
                Ok(()) => self.dirty = false,
                Err(e) => {
                    for job in jobs {
                        let _ = job.reply.send(Err(super::copy_error(&e)));
                    }
                    return true;
                }
            }
        }
        let now = now_ms();
        let mut batch = Batch::default();
        let repairs = self
            .core
            .view
            .write()
            .map(|mut v| v.take_refused(self.p))
            .unwrap_or_default();
        {
            let core = self.core.clone();
            let Ok(view) = core.view.read() else {
                return true;
            };
            for job in jobs {
                self.decide_job(&mut batch, &view, job, now);
            }
            self.stage_repairs(&mut batch, &view, &repairs);
            self.stage_expired(&mut batch, &view, now);
        }
        let offsets = if batch.changes.is_empty() {
            Vec::new()
        } else {
            match self.append_and_read(&batch.changes).await {
                Ok(offsets) => offsets,
                Err(e) => {
                    self.dirty = true;
                    // Their rewrites may not be stored: look at them again.
                    if let Ok(mut view) = self.core.view.write() {
                        view.restore_refused(self.p, repairs);
                    }
                    let e = e.with_context("outcome", "unknown: the write may still be applied");
                    for w in batch.waiting {
                        let _ = w.reply.send(Err(super::copy_error(&e)));
                    }
                    return true;
                }
            }
        };
        let mut ours = true;
        let Ok(view) = self.core.view.read() else {
            return true;
        };
        for w in batch.waiting {
            let at: Vec<i64> = w
                .records
                .iter()
                .map(|i| offsets.get(*i).copied().unwrap_or(-1))
                .collect();
            let accepted = at.iter().all(|o| view.accepted_at(self.p, *o, self.epoch));
            if accepted {
                let answer = w.outcome.map(|mut done| {
                    done.offset = at.iter().copied().max().unwrap_or(-1);
                    done
                });
                let _ = w.reply.send(answer);
            } else {
                ours = false;
                // A forwarded request may be read again by the new owner.
                let why = if w.forwarded {
                    "its new owner may still apply the write"
                } else {
                    "the write was not applied"
                };
                let _ = w.reply.send(Err(Error::new(
                    ErrorKind::Unavailable,
                    format!("kafka store: partition {} moved to another owner; {why}", self.p),
                )
                .with_operation("kafka.store.write")));
            }
        }
        ours
    }

    async fn append_and_read(&self, changes: &[Change]) -> Result<Vec<i64>> {
        let offsets =
            super::changelog::append(&self.core.producer, &self.core.changelog, self.p, changes).await?;
        if let Some(last) = offsets.iter().max() {
            self.core.progress.past(self.p, *last, self.core.timeout).await?;
        }
        Ok(offsets)
    }

    async fn barrier(&self) -> Result<()> {
        self.append_and_read(&[Change::Barrier]).await.map(drop)
    }
}
