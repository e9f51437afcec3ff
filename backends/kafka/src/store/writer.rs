//! The single writer of one owned partition: it claims the partition (a
//! new epoch), then takes writes in batches: each batch is resolved
//! against the view (compare-and-swap is decided here, by the only
//! writer), appended, read back, and answered only for what the fold
//! accepted. It also writes the tombstones of its expired keys.
//!
//! A batch's later writes see its earlier ones (an overlay), so writes to
//! one key in one batch chain correctly. After a failed append the writer
//! reads a barrier before its next batch, so it never decides on a view
//! that lacks records it may have written.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use multiagents_core::store::conflict;
use multiagents_core::{Error, ErrorKind, Expected, Result, Version};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Core;
use super::record::{Change, version};
use super::view::Entry;

/// A write asked of a partition's owner.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    Put {
        key: String,
        value: Bytes,
        ttl: Option<Duration>,
    },
    Cas {
        key: String,
        expected: Expected,
        value: Bytes,
        ttl: Option<Duration>,
    },
    Delete {
        key: String,
    },
}

impl Write {
    pub(crate) fn key(&self) -> &str {
        match self {
            Write::Put { key, .. } | Write::Cas { key, .. } | Write::Delete { key } => key,
        }
    }
}

/// What a write did: the new version (or, for a delete, whether the key
/// existed), and the changelog offset that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Done {
    pub(crate) version: Version,
    pub(crate) existed: bool,
    pub(crate) offset: i64,
}

/// A write with its request id (forwarded writes) and where to answer.
pub(crate) struct Job {
    pub(crate) write: Write,
    pub(crate) request: Option<u64>,
    pub(crate) reply: oneshot::Sender<Result<Done>>,
}

/// Most writes decided and appended as one batch.
const BATCH: usize = 512;
/// How often expired keys are looked for.
const SWEEP: Duration = Duration::from_secs(1);

/// Claims partition `p` for `member`, then writes until `revoked` fires,
/// `jobs` closes, or the fold refuses its records (another owner claimed).
pub(crate) async fn run(
    core: Arc<Core>,
    p: i32,
    member: String,
    mut jobs: mpsc::Receiver<Job>,
    revoked: CancellationToken,
) {
    let Some(epoch) = claim(&core, p, &member, &revoked).await else {
        return;
    };
    tracing::debug!(partition = p, epoch, %member, "kafka store: partition claimed");
    let mut w = Writer {
        core,
        p,
        epoch,
        seq: 0,
        dirty: false,
    };
    let mut sweep = tokio::time::interval(SWEEP);
    loop {
        let mut batch = Vec::new();
        tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => batch.push(job),
                None => return,
            },
            _ = sweep.tick() => {}
            () = revoked.cancelled() => return,
        }
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if !w.write(batch).await {
            tracing::info!(
                partition = p,
                epoch,
                "kafka store: another owner claimed the partition; this writer stops"
            );
            return;
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
            Ok::<_, Error>(
                core.view
                    .read()
                    .is_ok_and(|v| v.accepted_at(p, offset + 1, epoch)),
            )
        }
        .await;
        match result {
            Ok(true) => return Some(epoch),
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

/// A key as the batch sees it (`None`: absent or deleted in the batch).
type Seen = Option<Entry>;

struct Writer {
    core: Arc<Core>,
    p: i32,
    epoch: u64,
    seq: u64,
    /// An append failed: read a barrier before deciding again.
    dirty: bool,
}

/// A write waiting for the record at `index` of the batch's changes.
struct Slot {
    index: usize,
    version: Version,
    existed: bool,
}

impl Writer {
    fn next_version(&mut self) -> Result<Version> {
        self.seq += 1;
        version(self.epoch, self.seq).map(Version).ok_or_else(|| {
            Error::new(
                ErrorKind::Unavailable,
                "kafka store: the partition's versions are used up in this epoch; it is claimed again",
            )
        })
    }

    /// Decides, appends and answers `batch` (and expires what is due).
    /// `false` when the partition is no longer this writer's.
    async fn write(&mut self, batch: Vec<Job>) -> bool {
        if self.dirty {
            match self.barrier().await {
                Ok(()) => self.dirty = false,
                Err(e) => {
                    for job in batch {
                        let _ = job.reply.send(Err(super::copy_error(&e)));
                    }
                    return true;
                }
            }
        }
        let now = now_ms();
        let mut overlay: HashMap<String, Seen> = HashMap::new();
        let mut changes = Vec::new();
        let mut slots = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut failed_version = None;
        {
            let core = self.core.clone();
            let Ok(view) = core.view.read() else {
                return true;
            };
            let seen = |overlay: &HashMap<String, Seen>, key: &str| -> Seen {
                match overlay.get(key) {
                    Some(s) => s.clone(),
                    None => view.raw(key).cloned(),
                }
            };
            for job in batch {
                let key = job.write.key().to_string();
                let current = seen(&overlay, &key);
                let live = current.as_ref().filter(|e| e.live(now));
                // A forwarded write replayed (its first owner died before
                // answering): it is done already.
                if let (Some(r), Some(e)) = (job.request, live) {
                    if e.request == Some(r) {
                        let _ = job.reply.send(Ok(Done {
                            version: Version(e.version),
                            existed: true,
                            offset: -1,
                        }));
                        continue;
                    }
                }
                let (value, ttl) = match &job.write {
                    Write::Put { value, ttl, .. } => (Some(value.clone()), *ttl),
                    Write::Cas {
                        expected, value, ttl, ..
                    } => {
                        let actual = live.map(|e| Version(e.version));
                        let ok = match expected {
                            Expected::Absent => actual.is_none(),
                            Expected::Version(v) => actual == Some(*v),
                        };
                        if !ok {
                            let _ = job.reply.send(Err(conflict(&key, *expected, actual)));
                            continue;
                        }
                        (Some(value.clone()), *ttl)
                    }
                    Write::Delete { .. } => {
                        if current.is_none() {
                            let _ = job.reply.send(Ok(Done {
                                version: Version::PENDING,
                                existed: false,
                                offset: -1,
                            }));
                            continue;
                        }
                        (None, None)
                    }
                };
                let existed = live.is_some();
                let version = match self.next_version() {
                    Ok(v) => v,
                    Err(e) => {
                        failed_version = Some(super::copy_error(&e));
                        let _ = job.reply.send(Err(e));
                        continue;
                    }
                };
                let change = match value {
                    Some(value) => {
                        let expires_ms =
                            ttl.map(|t| now.saturating_add(multiagents_core::scheduler::millis(t).max(1)));
                        overlay.insert(
                            key.clone(),
                            Some(Entry {
                                value: value.clone(),
                                version: version.0,
                                expires_ms,
                                request: job.request,
                            }),
                        );
                        Change::Put {
                            key,
                            value,
                            version: version.0,
                            expires_ms,
                            request: job.request,
                        }
                    }
                    None => {
                        overlay.insert(key.clone(), None);
                        Change::Delete {
                            key,
                            version: version.0,
                            request: job.request,
                        }
                    }
                };
                slots.push(Slot {
                    index: changes.len(),
                    version,
                    existed,
                });
                replies.push(job.reply);
                changes.push(change);
            }
            // Tombstones for expired keys nobody wrote in this batch.
            for (key, _) in view.expired(self.p, now, 256) {
                if overlay.contains_key(&key) || failed_version.is_some() {
                    continue;
                }
                if let Ok(version) = self.next_version() {
                    overlay.insert(key.clone(), None);
                    changes.push(Change::Delete {
                        key,
                        version: version.0,
                        request: None,
                    });
                }
            }
        }
        if changes.is_empty() {
            return failed_version.is_none();
        }
        let offsets = match self.append_and_read(&changes).await {
            Ok(offsets) => offsets,
            Err(e) => {
                self.dirty = true;
                let e = e.with_context("outcome", "unknown: the write may still be applied");
                for reply in replies {
                    let _ = reply.send(Err(super::copy_error(&e)));
                }
                return true;
            }
        };
        let mut ours = true;
        let Ok(view) = self.core.view.read() else {
            return true;
        };
        for (slot, reply) in slots.into_iter().zip(replies) {
            let Slot {
                index,
                version,
                existed,
            } = slot;
            let offset = offsets.get(index).copied().unwrap_or(-1);
            if view.accepted_at(self.p, offset, self.epoch) {
                let _ = reply.send(Ok(Done {
                    version,
                    existed,
                    offset,
                }));
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
        ours && failed_version.is_none()
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
