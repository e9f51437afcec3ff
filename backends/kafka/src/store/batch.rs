//! Deciding one batch of a partition writer's jobs: each write against
//! the view and the batch's earlier writes (the overlay), due timers
//! claimed, and a record of what a forwarded request was answered when it
//! changed nothing (so a replay is answered the same). Nothing here does
//! I/O; [`writer`](super::writer) appends what is decided.

use std::collections::HashMap;

use multiagents_core::scheduler::DueTimer;
use multiagents_core::store::conflict;
use multiagents_core::{Error, ErrorKind, Expected, Result, Version};
use tokio::sync::oneshot;

use super::decide::{self, Decision, Done, KeyState, Write};
use super::record::{Applied, Change, version};
use super::view::{Answer, View};
use super::writer::{Forwarded, Job, Work, Writer};

/// A job waiting for its records (indices into the batch's changes), and
/// what it is answered once they are accepted.
pub(super) struct Waiting {
    pub(super) records: Vec<usize>,
    pub(super) outcome: Result<Done>,
    /// A forwarded request (a new owner may read it again).
    pub(super) forwarded: bool,
    pub(super) reply: oneshot::Sender<Result<Done>>,
}

/// One batch being decided: its records, and who waits for which.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) overlay: HashMap<String, KeyState>,
    pub(super) changes: Vec<Change>,
    pub(super) waiting: Vec<Waiting>,
}

impl Batch {
    pub(super) fn state(&self, view: &View, key: &str) -> KeyState {
        self.overlay.get(key).cloned().unwrap_or_else(|| KeyState {
            entry: view.raw(key).cloned(),
            timer: view.timer(key),
        })
    }
}

/// The answer to a forwarded write read again, from what its records say.
fn replayed(write: &Write, answer: Answer) -> Result<Done> {
    match answer {
        Answer::Done { version, hit, offset } => {
            let mut done = Done::answered(hit, Version(version));
            done.offset = offset;
            Ok(done)
        }
        Answer::Conflict { actual } => {
            let expected = match write {
                Write::Cas { expected, .. } => *expected,
                _ => Expected::Absent,
            };
            Err(conflict(write.key(), expected, actual.map(Version)))
        }
    }
}

impl Writer {
    /// The version the next record would carry.
    pub(super) fn peek(&self) -> Result<u64> {
        version(self.epoch, self.seq + 1).ok_or_else(|| {
            Error::new(
                ErrorKind::Unavailable,
                "kafka store: the partition's versions are used up in this epoch; it must be claimed again",
            )
        })
    }

    /// Adds the record of what forwarded request `r` is answered without a
    /// change (a result, or a conflict), written with `version`; `None`
    /// for other errors (never applied, also when read again).
    pub(super) fn mark(
        &mut self,
        batch: &mut Batch,
        r: &Forwarded,
        outcome: &Result<Done>,
        version: u64,
    ) -> Option<usize> {
        let (answered, hit, conflict) = match outcome {
            Ok(done) => (done.version.0, done.existed, None),
            Err(e) if e.kind() == ErrorKind::Conflict => {
                let actual = e
                    .context_value("actual")
                    .and_then(|a| a.strip_prefix('v'))
                    .and_then(|v| v.parse().ok());
                (0, false, Some(actual))
            }
            Err(_) => return None,
        };
        self.seq += 1;
        batch.changes.push(Change::Answered {
            written: version,
            request: Applied {
                id: r.id.clone(),
                deadline_ms: r.deadline_ms,
                hit,
            },
            version: answered,
            conflict,
        });
        Some(batch.changes.len() - 1)
    }

    /// Adds `key`'s new `state` to the batch; the index of its record, or
    /// `None` when nothing needs writing.
    pub(super) fn stage(
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

    pub(super) fn decide_job(&mut self, batch: &mut Batch, view: &View, job: Job, now: u64) {
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
                    // Read again (its first owner died before its offset was
                    // committed): answered as it was, not decided again.
                    if let Some(answer) = view.answered(self.p, &r.id) {
                        let _ = job.reply.send(replayed(&write, answer));
                        return;
                    }
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
                }
                let before = batch.state(view, &key);
                let (staged, outcome) = match decide::decide(&write, &before, now, version) {
                    Ok(Decision::Write { state, existed }) => {
                        let applied = job.request.as_ref().map(|r| Applied {
                            id: r.id.clone(),
                            deadline_ms: r.deadline_ms,
                            hit: existed,
                        });
                        let staged = self.stage(batch, &key, state, version, applied, &before);
                        (staged, Ok(Done::answered(existed, Version(version))))
                    }
                    Ok(Decision::Answer(done)) => (None, Ok(done)),
                    Err(e) => (None, Err(e)),
                };
                // A forwarded request answered without a change leaves a
                // record of its answer, so a replay is answered the same.
                let staged = match (staged, &job.request) {
                    (Some(index), _) => Some(index),
                    (None, Some(r)) => self.mark(batch, r, &outcome, version),
                    (None, None) => None,
                };
                match staged {
                    Some(index) => batch.waiting.push(Waiting {
                        records: vec![index],
                        outcome,
                        forwarded: job.request.is_some(),
                        reply: job.reply,
                    }),
                    None => {
                        let _ = job.reply.send(outcome);
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
                    outcome: Ok(done),
                    forwarded: false,
                    reply: job.reply,
                });
            }
        }
    }

    /// Stages, for each of `keys` (keys with a fenced writer's record),
    /// its state again, so the latest record of each is an accepted one
    /// (compaction keeps only that).
    pub(super) fn stage_repairs(&mut self, batch: &mut Batch, view: &View, keys: &[String]) {
        for key in keys {
            let Ok(version) = self.peek() else {
                break;
            };
            if batch.overlay.contains_key(key) {
                continue;
            }
            let state = batch.state(view, key);
            let change = state
                .change(key, version, None, &state)
                .unwrap_or(Change::Delete {
                    key: key.clone(),
                    version,
                    request: None,
                });
            self.seq += 1;
            batch.overlay.insert(key.clone(), state);
            batch.changes.push(change);
        }
    }

    /// Stages tombstones for values expired at `now` that nobody wrote in
    /// this batch (their timers stay).
    pub(super) fn stage_expired(&mut self, batch: &mut Batch, view: &View, now: u64) {
        for (key, _) in view.expired(self.p, now, 256) {
            let Ok(version) = self.peek() else {
                break;
            };
            let before = batch.state(view, &key);
            if batch.overlay.contains_key(&key) || before.entry.as_ref().is_none_or(|e| e.live(now)) {
                continue;
            }
            let state = KeyState {
                entry: None,
                timer: before.timer,
            };
            self.stage(batch, &key, state, version, None, &before);
        }
    }
}
