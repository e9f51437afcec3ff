//! The materialised view: the changelog folded, in offset order, into the
//! keys' current values, with each partition's owner epoch.
//!
//! The fold is deterministic, so every instance that has read a partition
//! to the same offset holds the same state for it:
//!
//! * A **claim** with an epoch greater than the partition's makes it the
//!   partition's epoch; any other claim is refused (two claimants that
//!   picked the same epoch: the first in the log wins, and the second sees
//!   its own claim refused: [`View::claim_accepted`]).
//! * A **put** or **delete** is accepted only when written in the
//!   partition's current epoch (`version >> 40`). A writer whose
//!   partition was claimed by another (a zombie: revoked, but not yet told)
//!   is refused: its records change nothing, here or anywhere.
//! * Expired values read as absent (they stay until their owner writes the
//!   tombstone).
//! * Each record sets its key's timer as it says (none: no timer), indexed
//!   by partition and scope for the owner's claims.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;

use multiagents_core::scheduler::scope_of;

use super::record::{Applied, Change, Timer, epoch_of};

/// A key's current value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) value: Bytes,
    pub(crate) version: u64,
    pub(crate) expires_ms: Option<u64>,
}

impl Entry {
    pub(crate) fn live(&self, now_ms: u64) -> bool {
        self.expires_ms.is_none_or(|e| e > now_ms)
    }
}

/// What a forwarded request was answered, as its records say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Done: the version, whether it hit, and the record's offset.
    Done { version: u64, hit: bool, offset: i64 },
    /// A compare-and-swap conflict, with the version found (`None`: absent).
    Conflict { actual: Option<u64> },
}

/// What the fold did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Accepted,
    /// Written in an epoch that is not the partition's (fenced).
    Refused,
}

#[derive(Debug, Default, Clone)]
struct Partition {
    epoch: u64,
    owner: String,
    /// Offsets at which each accepted claim took effect, in order.
    claims: Vec<(i64, u64)>,
    /// Keys with a TTL: (expires at, key).
    expiring: BTreeSet<(u64, String)>,
    /// Timers per scope: (due, key).
    due: HashMap<String, BTreeSet<(u64, String)>>,
    /// Keys with a record the fold refused (a fenced writer's): the owner
    /// writes their state again, so a refused record is never the latest
    /// of its key when compaction runs. At most [`MAX_REFUSED`] kept.
    refused: BTreeSet<String>,
    /// Forwarded requests answered: id → answer; and by deadline.
    applied: HashMap<String, Answer>,
    applied_order: BTreeSet<(u64, String)>,
}

/// How long past its deadline an applied request is remembered.
const REMEMBER_PAST_DEADLINE: u64 = 60_000;
/// Most refused keys kept per partition for its owner to write again
/// (zombie records are rare; this bounds a view that never owns it).
const MAX_REFUSED: usize = 100_000;

/// The view over every partition of the changelog.
#[derive(Debug)]
pub(crate) struct View {
    entries: BTreeMap<String, Entry>,
    timers: HashMap<String, Timer>,
    partitions: Vec<Partition>,
    partition_count: i32,
}

impl View {
    pub(crate) fn new(partitions: i32) -> View {
        View {
            entries: BTreeMap::new(),
            timers: HashMap::new(),
            partitions: vec![Partition::default(); usize::try_from(partitions.max(1)).unwrap_or(1)],
            partition_count: partitions.max(1),
        }
    }

    fn part(&mut self, p: i32) -> Option<&mut Partition> {
        self.partitions.get_mut(usize::try_from(p).ok()?)
    }

    /// Folds the record at `offset` of partition `p`.
    pub(crate) fn apply(&mut self, p: i32, offset: i64, change: Change) -> Outcome {
        let Some(part) = self.part(p) else {
            return Outcome::Refused;
        };
        if let Some(written) = change.written()
            && (epoch_of(written) != part.epoch || part.epoch == 0)
        {
            if let Some(key) = change.key()
                && part.refused.len() < MAX_REFUSED
            {
                part.refused.insert(key.to_string());
            }
            return Outcome::Refused;
        }
        match change {
            Change::Barrier => Outcome::Accepted,
            Change::Answered {
                request,
                version,
                conflict,
                ..
            } => {
                let answer = match conflict {
                    Some(actual) => Answer::Conflict { actual },
                    None => Answer::Done {
                        version,
                        hit: request.hit,
                        offset,
                    },
                };
                self.remember(p, request, answer);
                Outcome::Accepted
            }
            Change::Claim { epoch, member } => {
                if epoch > part.epoch {
                    part.epoch = epoch;
                    part.owner = member;
                    part.claims.push((offset, epoch));
                    Outcome::Accepted
                } else {
                    Outcome::Refused
                }
            }
            Change::Put {
                key,
                value,
                version,
                expires_ms,
                request,
                timer,
                ..
            } => {
                let entry = Entry {
                    value,
                    version,
                    expires_ms,
                };
                self.set_value(p, &key, Some(entry));
                self.set_timer(p, &key, timer);
                self.applied(p, request, version, offset);
                Outcome::Accepted
            }
            Change::Timer {
                key,
                timer,
                request,
                version,
            } => {
                self.set_value(p, &key, None);
                self.set_timer(p, &key, Some(timer));
                self.applied(p, request, version, offset);
                Outcome::Accepted
            }
            Change::Delete {
                key,
                request,
                version,
            } => {
                self.set_value(p, &key, None);
                self.set_timer(p, &key, None);
                self.applied(p, request, version, offset);
                Outcome::Accepted
            }
        }
    }

    /// Remembers what forwarded request `request` answered, and forgets
    /// those past their deadline by [`REMEMBER_PAST_DEADLINE`] (by this
    /// host's clock: they are refused as late by then anyway).
    fn applied(&mut self, p: i32, request: Option<Applied>, version: u64, offset: i64) {
        match request {
            Some(r) => {
                let answer = Answer::Done {
                    version,
                    hit: r.hit,
                    offset,
                };
                self.remember(p, r, answer);
            }
            None => self.forget_old(p),
        }
    }

    fn remember(&mut self, p: i32, request: Applied, answer: Answer) {
        self.forget_old(p);
        if let Some(part) = self.part(p) {
            part.applied_order
                .insert((request.deadline_ms, request.id.clone()));
            part.applied.insert(request.id, answer);
        }
    }

    /// Forgets requests past their deadline by [`REMEMBER_PAST_DEADLINE`]
    /// (by this host's clock: they are refused as late by then anyway).
    fn forget_old(&mut self, p: i32) {
        let Some(part) = self.part(p) else {
            return;
        };
        let horizon = crate::store::now_ms().saturating_sub(REMEMBER_PAST_DEADLINE);
        while let Some((deadline, id)) = part.applied_order.first().cloned() {
            if deadline >= horizon {
                break;
            }
            part.applied_order.pop_first();
            part.applied.remove(&id);
        }
    }

    /// What forwarded request `id` was answered, when a record of `p`
    /// says so.
    pub(crate) fn answered(&self, p: i32, id: &str) -> Option<Answer> {
        usize::try_from(p)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .and_then(|part| part.applied.get(id).copied())
    }

    fn set_value(&mut self, p: i32, key: &str, entry: Option<Entry>) {
        let expires = entry.as_ref().and_then(|e| e.expires_ms);
        let old = match entry {
            Some(e) => self.entries.insert(key.to_string(), e),
            None => self.entries.remove(key),
        };
        let Some(part) = self.part(p) else {
            return;
        };
        if let Some(old) = old.and_then(|e| e.expires_ms) {
            part.expiring.remove(&(old, key.to_string()));
        }
        if let Some(e) = expires {
            part.expiring.insert((e, key.to_string()));
        }
    }

    fn set_timer(&mut self, p: i32, key: &str, timer: Option<Timer>) {
        let old = match timer {
            Some(t) => self.timers.insert(key.to_string(), t),
            None => self.timers.remove(key),
        };
        let Some(part) = self.part(p) else {
            return;
        };
        let scope = scope_of(key);
        if let Some(old) = old
            && let Some(set) = part.due.get_mut(scope)
        {
            set.remove(&(old.due_ms, key.to_string()));
            if set.is_empty() {
                part.due.remove(scope);
            }
        }
        if let Some(t) = timer {
            part.due
                .entry(scope.to_string())
                .or_default()
                .insert((t.due_ms, key.to_string()));
        }
    }

    /// Takes the keys of `p` with a refused record since the last call.
    pub(crate) fn take_refused(&mut self, p: i32) -> Vec<String> {
        self.part(p)
            .map(|part| std::mem::take(&mut part.refused).into_iter().collect())
            .unwrap_or_default()
    }

    /// Gives back keys taken by [`take_refused`](Self::take_refused) whose
    /// rewrite was not appended.
    pub(crate) fn restore_refused(&mut self, p: i32, keys: Vec<String>) {
        if let Some(part) = self.part(p) {
            part.refused.extend(keys);
        }
    }

    /// The key's timer.
    pub(crate) fn timer(&self, key: &str) -> Option<Timer> {
        self.timers.get(key).copied()
    }

    /// Up to `limit` timers of `scope` in partition `p` due at `now_ms`,
    /// earliest first.
    pub(crate) fn due(&self, p: i32, scope: &str, now_ms: u64, limit: usize) -> Vec<(String, Timer)> {
        let Some(set) = usize::try_from(p)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .and_then(|part| part.due.get(scope))
        else {
            return Vec::new();
        };
        set.iter()
            .take_while(|(due, _)| *due <= now_ms)
            .take(limit)
            .filter_map(|(_, k)| self.timers.get(k).map(|t| (k.clone(), *t)))
            .collect()
    }

    /// How many timers of `scope` are set, over every partition.
    pub(crate) fn pending(&self, scope: &str) -> u64 {
        self.partitions
            .iter()
            .filter_map(|part| part.due.get(scope))
            .map(|set| set.len() as u64)
            .sum()
    }

    /// When the earliest timer of `scope` is due, over every partition.
    pub(crate) fn next_due(&self, scope: &str) -> Option<u64> {
        self.partitions
            .iter()
            .filter_map(|part| part.due.get(scope).and_then(|set| set.first()))
            .map(|(due, _)| *due)
            .min()
    }

    /// Whether a record written with `epoch` at `offset` of `p` was
    /// accepted (the claim in force there had that epoch). Valid once the
    /// view has read past `offset`.
    pub(crate) fn accepted_at(&self, p: i32, offset: i64, epoch: u64) -> bool {
        usize::try_from(p)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .and_then(|part| part.claims.iter().rev().find(|(at, _)| *at < offset))
            .is_some_and(|(_, e)| *e == epoch)
    }

    /// Whether the claim record at `offset` of `p` was accepted (it raised
    /// the partition's epoch). Valid once the view has read past `offset`.
    pub(crate) fn claim_accepted(&self, p: i32, offset: i64) -> bool {
        usize::try_from(p)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .is_some_and(|part| part.claims.iter().any(|(at, _)| *at == offset))
    }

    /// The partition's epoch and owner.
    pub(crate) fn owner(&self, p: i32) -> (u64, &str) {
        usize::try_from(p)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .map_or((0, ""), |part| (part.epoch, part.owner.as_str()))
    }

    /// The key's live entry.
    pub(crate) fn get(&self, key: &str, now_ms: u64) -> Option<&Entry> {
        self.entries.get(key).filter(|e| e.live(now_ms))
    }

    /// The key's entry, expired or not (what the owner writes over).
    pub(crate) fn raw(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Up to `limit` live keys under `prefix`, after `after`, in order;
    /// and whether more may follow.
    pub(crate) fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> (Vec<(String, Entry)>, bool) {
        use std::ops::Bound;
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a.to_string()),
            _ => Bound::Included(prefix.to_string()),
        };
        let mut out = Vec::new();
        for (k, e) in self.entries.range((start, Bound::Unbounded)) {
            if !k.starts_with(prefix) {
                break;
            }
            if !e.live(now_ms) {
                continue;
            }
            if out.len() == limit {
                return (out, true);
            }
            out.push((k.clone(), e.clone()));
        }
        (out, false)
    }

    /// Keys of `p` expired at `now_ms` (at most `limit`), with their versions.
    pub(crate) fn expired(&self, p: i32, now_ms: u64, limit: usize) -> Vec<(String, u64)> {
        let Some(part) = usize::try_from(p).ok().and_then(|i| self.partitions.get(i)) else {
            return Vec::new();
        };
        part.expiring
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .take(limit)
            .filter_map(|(_, k)| self.entries.get(k).map(|e| (k.clone(), e.version)))
            .collect()
    }

    pub(crate) fn partitions(&self) -> i32 {
        self.partition_count
    }
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
