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
    /// Forwarded requests applied: id → (version, hit); and by deadline.
    applied: HashMap<String, (u64, bool)>,
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
                self.applied(p, request, version);
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
                self.applied(p, request, version);
                Outcome::Accepted
            }
            Change::Delete {
                key,
                request,
                version,
            } => {
                self.set_value(p, &key, None);
                self.set_timer(p, &key, None);
                self.applied(p, request, version);
                Outcome::Accepted
            }
        }
    }

    /// Remembers what forwarded request `request` answered, and forgets
    /// those past their deadline by [`REMEMBER_PAST_DEADLINE`] (by this
    /// host's clock: they are refused as late by then anyway).
    fn applied(&mut self, p: i32, request: Option<Applied>, version: u64) {
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
        if let Some(r) = request {
            part.applied_order.insert((r.deadline_ms, r.id.clone()));
            part.applied.insert(r.id, (version, r.hit));
        }
    }

    /// What forwarded request `id` answered, when a record of `p` applied
    /// it: `(version, hit)`.
    pub(crate) fn answered(&self, p: i32, id: &str) -> Option<(u64, bool)> {
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
mod tests {
    use super::super::record::version;
    use super::*;

    fn put(key: &str, v: u64, expires_ms: Option<u64>) -> Change {
        Change::Put {
            key: key.into(),
            value: Bytes::from(format!("{key}@{v}")),
            version: v,
            written: v,
            expires_ms,
            request: None,
            timer: None,
        }
    }

    fn claim(epoch: u64) -> Change {
        Change::Claim {
            epoch,
            member: format!("m{epoch}"),
        }
    }

    fn v(epoch: u64, seq: u64) -> u64 {
        version(epoch, seq).unwrap_or_default()
    }

    #[test]
    fn writes_before_any_claim_are_refused() {
        let mut view = View::new(2);
        assert_eq!(view.apply(0, 0, put("k", v(0, 1), None)), Outcome::Refused);
        assert_eq!(view.apply(0, 1, put("k", v(1, 1), None)), Outcome::Refused);
        assert!(view.get("k", 0).is_none());
    }

    #[test]
    fn a_fenced_writer_changes_nothing() {
        let mut view = View::new(1);
        assert_eq!(view.apply(0, 0, claim(1)), Outcome::Accepted);
        assert_eq!(view.apply(0, 1, put("k", v(1, 1), None)), Outcome::Accepted);
        // A new owner claims epoch 2; the old owner (epoch 1) writes on.
        assert_eq!(view.apply(0, 2, claim(2)), Outcome::Accepted);
        assert_eq!(view.apply(0, 3, put("k", v(1, 2), None)), Outcome::Refused);
        assert_eq!(
            view.apply(
                0,
                4,
                Change::Delete {
                    key: "k".into(),
                    version: v(1, 3),
                    request: None
                }
            ),
            Outcome::Refused
        );
        assert_eq!(view.get("k", 0).map(|e| e.version), Some(v(1, 1)));
        assert_eq!(
            view.take_refused(0),
            vec!["k".to_string()],
            "for its owner to write again"
        );
        assert!(view.take_refused(0).is_empty());
        assert_eq!(view.apply(0, 5, put("k", v(2, 1), None)), Outcome::Accepted);
        // Which epoch each offset was written under.
        assert!(view.accepted_at(0, 1, 1));
        assert!(!view.accepted_at(0, 3, 1));
        assert!(view.accepted_at(0, 5, 2));
        // A claim that does not raise the epoch is refused, and its
        // claimant can tell.
        assert_eq!(view.apply(0, 6, claim(2)), Outcome::Refused);
        assert!(view.claim_accepted(0, 2));
        assert!(!view.claim_accepted(0, 6));
        assert_eq!(view.owner(0), (2, "m2"));
    }

    #[test]
    fn applied_requests_are_remembered_until_a_minute_past_their_deadline() {
        let now = crate::store::now_ms();
        let mut view = View::new(1);
        view.apply(0, 0, claim(1));
        let forwarded = |id: &str, deadline_ms| Change::Delete {
            key: "k".into(),
            version: v(1, 1),
            request: Some(Applied {
                id: id.into(),
                deadline_ms,
                hit: true,
            }),
        };
        view.apply(0, 1, forwarded("m/1", now + 10_000));
        assert_eq!(view.answered(0, "m/1"), Some((v(1, 1), true)));
        assert_eq!(view.answered(0, "m/2"), None);
        // Long past its deadline: forgotten at the next record.
        view.apply(0, 2, forwarded("m/old", now - 2 * REMEMBER_PAST_DEADLINE));
        view.apply(0, 3, put("x", v(1, 3), None));
        assert_eq!(view.answered(0, "m/old"), None);
        assert!(view.answered(0, "m/1").is_some());
    }

    #[test]
    fn partitions_are_fenced_independently() {
        let mut view = View::new(2);
        view.apply(0, 0, claim(1));
        view.apply(1, 0, claim(5));
        assert_eq!(view.apply(1, 1, put("a", v(5, 1), None)), Outcome::Accepted);
        assert_eq!(view.apply(0, 1, put("b", v(5, 1), None)), Outcome::Refused);
    }

    #[test]
    fn expiry_hides_values_and_lists_them_for_their_owner() {
        let mut view = View::new(1);
        view.apply(0, 0, claim(1));
        view.apply(0, 1, put("a", v(1, 1), Some(100)));
        view.apply(0, 2, put("b", v(1, 2), Some(50)));
        view.apply(0, 3, put("c", v(1, 3), None));
        assert!(view.get("a", 99).is_some());
        assert!(view.get("a", 100).is_none());
        assert_eq!(
            view.expired(0, 100, 10),
            vec![("b".into(), v(1, 2)), ("a".into(), v(1, 1))]
        );
        // A later write without TTL takes the key off the expiry list.
        view.apply(0, 4, put("a", v(1, 4), None));
        assert_eq!(view.expired(0, 100, 10), vec![("b".into(), v(1, 2))]);
        view.apply(
            0,
            5,
            Change::Delete {
                key: "b".into(),
                version: v(1, 5),
                request: None,
            },
        );
        assert!(view.expired(0, 1000, 10).is_empty());
        let (page, more) = view.scan("", None, 10, 100);
        assert_eq!(
            page.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            vec!["a", "c"]
        );
        assert!(!more);
    }

    #[test]
    fn scans_page_in_order_within_the_prefix() {
        let mut view = View::new(1);
        view.apply(0, 0, claim(1));
        for (i, k) in ["p/a", "p/b", "p/c", "q/a", "o/z"].iter().enumerate() {
            view.apply(0, i as i64 + 1, put(k, v(1, i as u64 + 1), None));
        }
        let (first, more) = view.scan("p/", None, 2, 0);
        assert_eq!(
            first.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            vec!["p/a", "p/b"]
        );
        assert!(more);
        let (rest, more) = view.scan("p/", Some("p/b"), 2, 0);
        assert_eq!(
            rest.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            vec!["p/c"]
        );
        assert!(!more);
    }
}
