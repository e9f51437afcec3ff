//! The single writer of one owned partition: it claims the partition (a
//! new epoch), then takes writes in batches: each batch is decided
//! against the view ([`decide`](super::decide): compare-and-swap and the
//! timer rules, applied by the only writer), appended, read back, and
//! answered only for what the fold accepted. It also claims the
//! partition's due timers, and writes the tombstones of expired keys.
//!
//! A batch's later writes see its earlier ones (an overlay), so writes to
//! one key in one batch chain correctly. After a failed append the writer
//! reads a barrier before its next batch, so it never decides on a view
//! that lacks records it may have written.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use multiagents_core::scheduler::DueTimer;
use multiagents_core::{Error, ErrorKind, Result, Version};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Core;
use super::decide::{self, Decision, Done, KeyState, Write};
use super::record::{Applied, Change, version};
use super::view::View;

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

struct Writer {
    core: Arc<Core>,
    p: i32,
    epoch: u64,
    seq: u64,
    /// An append failed: read a barrier before deciding again.
    dirty: bool,
}

/// A job waiting for its records (indices into the batch's changes).
struct Waiting {
    records: Vec<usize>,
    done: Done,
    reply: oneshot::Sender<Result<Done>>,
}

/// One batch being decided: its records, and who waits for which.
#[derive(Default)]
struct Batch {
    overlay: HashMap<String, KeyState>,
    changes: Vec<Change>,
    waiting: Vec<Waiting>,
}

impl Batch {
    fn state(&self, view: &View, key: &str) -> KeyState {
        self.overlay.get(key).cloned().unwrap_or_else(|| KeyState {
            entry: view.raw(key).cloned(),
            timer: view.timer(key),
        })
    }
}

impl Writer {
    /// The version the next record would carry.
    fn peek(&self) -> Result<u64> {
        version(self.epoch, self.seq + 1).ok_or_else(|| {
            Error::new(
                ErrorKind::Unavailable,
                "kafka store: the partition's versions are used up in this epoch; it must be claimed again",
            )
        })
    }

    /// Adds `key`'s new `state` to the batch; the index of its record, or
    /// `None` when nothing needs writing.
    fn stage(
        &mut self,
        batch: &mut Batch,
        key: &str,
        state: KeyState,
        version: u64,
        request: Option<Applied>,
        before: &KeyState,
    ) -> Option<usize> {
        let change = state.change(key, version, request, before)?;
        self.seq += 1;
        batch.overlay.insert(key.to_string(), state);
        batch.changes.push(change);
        Some(batch.changes.len() - 1)
    }

    fn decide_job(&mut self, batch: &mut Batch, view: &View, job: Job, now: u64) {
        let version = match self.peek() {
            Ok(v) => v,
            Err(e) => {
                let _ = job.reply.send(Err(e));
                return;
            }
        };
        match job.work {
            Work::Write(write) => {
                let key = write.key().to_string();
                if let Some(r) = &job.request {
                    // Its asker has given up: never applied after that.
                    if r.deadline_ms < now {
                        let _ = job.reply.send(Err(Error::new(
                            ErrorKind::Timeout,
                            "kafka store: a forwarded write reached its writer after its deadline; not applied",
                        )
                        .with_operation("kafka.store.write")
                        .with_context("key", &key)));
                        return;
                    }
                    // Replayed (its first owner died before its offset was
                    // committed): answered as it was, not applied again.
                    if let Some((version, hit)) = view.answered(self.p, &r.id) {
                        let _ = job.reply.send(Ok(Done::answered(hit, Version(version))));
                        return;
                    }
                }
                let before = batch.state(view, &key);
                match decide::decide(&write, &before, now, version) {
                    Err(e) => {
                        let _ = job.reply.send(Err(e));
                    }
                    Ok(Decision::Answer(done)) => {
                        let _ = job.reply.send(Ok(done));
                    }
                    Ok(Decision::Write { state, existed }) => {
                        let applied = job.request.map(|r| Applied {
                            id: r.id,
                            deadline_ms: r.deadline_ms,
                            hit: existed,
                        });
                        match self.stage(batch, &key, state, version, applied, &before) {
                            Some(index) => batch.waiting.push(Waiting {
                                records: vec![index],
                                done: Done::answered(existed, Version(version)),
                                reply: job.reply,
                            }),
                            None => {
                                let _ = job.reply.send(Ok(Done::answered(existed, Version(version))));
                            }
                        }
                    }
                }
            }
            Work::Claim {
                scope,
                now_ms,
                limit,
                lease,
            } => {
                let mut records = Vec::new();
                let mut timers = Vec::new();
                for (key, _) in view.due(self.p, &scope, now_ms, limit) {
                    let before = batch.state(view, &key);
                    let Some(due) = before.timer.filter(|t| t.due_ms <= now_ms) else {
                        continue;
                    };
                    let Ok(version) = self.peek() else {
                        break;
                    };
                    let state = decide::claimed(&before, now_ms, lease, version);
                    if let Some(index) = self.stage(batch, &key, state, version, None, &before) {
                        records.push(index);
                        timers.push(DueTimer {
                            key,
                            due_ms: due.due_ms,
                            claim: version,
                        });
                    }
                }
                let mut done = Done::answered(true, Version::PENDING);
                done.timers = timers;
                batch.waiting.push(Waiting {
                    records,
                    done,
                    reply: job.reply,
                });
            }
        }
    }

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
            // Keys with a fenced writer's record: their state again, so the
            // latest record of each is an accepted one (compaction keeps
            // only that).
            for key in repairs.iter().cloned() {
                let Ok(version) = self.peek() else {
                    break;
                };
                if batch.overlay.contains_key(&key) {
                    continue;
                }
                let state = batch.state(&view, &key);
                let change = state
                    .change(&key, version, None, &state)
                    .unwrap_or(Change::Delete {
                        key: key.clone(),
                        version,
                        request: None,
                    });
                self.seq += 1;
                batch.overlay.insert(key, state);
                batch.changes.push(change);
            }
            // Expired values nobody wrote in this batch go (their timers stay).
            for (key, _) in view.expired(self.p, now, 256) {
                let Ok(version) = self.peek() else {
                    break;
                };
                let before = batch.state(&view, &key);
                if batch.overlay.contains_key(&key) || before.entry.as_ref().is_none_or(|e| e.live(now)) {
                    continue;
                }
                let state = KeyState {
                    entry: None,
                    timer: before.timer,
                };
                self.stage(&mut batch, &key, state, version, None, &before);
            }
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
            let reply = w.reply;
            if accepted {
                let mut done = w.done;
                done.offset = at.iter().copied().max().unwrap_or(-1);
                let _ = reply.send(Ok(done));
            } else {
                ours = false;
                let _ = reply.send(Err(Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "kafka store: partition {} moved to another owner; the write was not applied",
                        self.p
                    ),
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
