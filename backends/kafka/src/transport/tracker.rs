//! The contiguous watermark of each partition a queue consumer owns.
//!
//! Kafka commits one offset per partition: "everything before this is
//! done". Deliveries are settled out of order, so the offset a consumer may
//! store is the lowest offset it delivered and has not settled yet (or,
//! with nothing unsettled, one past the highest it delivered). Committing
//! further would lose the unsettled work if the consumer died; this never
//! does.
//!
//! Each assignment of a partition gets a new generation. A revoke forgets
//! the partition; a settle from an earlier generation (a delivery that
//! outlived its partition's move to another consumer) changes nothing: the
//! new owner redelivers that message from the committed watermark.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

#[derive(Debug)]
struct Partition {
    generation: u64,
    unsettled: BTreeSet<i64>,
    /// One past the highest offset delivered.
    next: i64,
    /// The last watermark handed out for storing.
    stored: i64,
}

/// Watermarks of one consumer's partitions.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    inner: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    partitions: HashMap<(String, i32), Partition>,
    generations: u64,
    /// The high watermark each fetched partition had in its last fetch
    /// response (from librdkafka's statistics), for queue depths.
    highs: HashMap<(String, i32), i64>,
    /// Records read and not handed out yet (delivered to the tracker, but
    /// waiting for a free slot), per partition: ready, not in flight.
    stashed: HashMap<(String, i32), usize>,
}

/// What one consumer knows of one topic's partitions, for queue depths.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    /// Per partition it has delivered from: one past the highest offset
    /// delivered, and how many deliveries are unsettled.
    pub(crate) delivered: HashMap<i32, (i64, usize)>,
    /// Per partition it fetches: the high watermark of its last fetch.
    pub(crate) highs: HashMap<i32, i64>,
    /// Per partition: read, not handed out yet (counted in `delivered`'s
    /// unsettled).
    pub(crate) stashed: HashMap<i32, usize>,
}

impl Tracker {
    /// Records a delivery of `offset`; returns the generation to settle it with.
    pub(crate) fn deliver(&self, topic: &str, partition: i32, offset: i64) -> u64 {
        let Ok(mut state) = self.inner.lock() else {
            return 0;
        };
        let state = &mut *state;
        let p = match state.partitions.get_mut(&(topic.to_string(), partition)) {
            Some(p) => p,
            None => {
                state.generations += 1;
                state
                    .partitions
                    .entry((topic.to_string(), partition))
                    .or_insert(Partition {
                        generation: state.generations,
                        unsettled: BTreeSet::new(),
                        next: offset,
                        stored: offset,
                    })
            }
        };
        p.unsettled.insert(offset);
        p.next = p.next.max(offset + 1);
        p.generation
    }

    /// Settles `offset`; returns the new watermark to store when it moved,
    /// `None` when it did not or the partition is no longer ours (another
    /// generation).
    pub(crate) fn settle(&self, topic: &str, partition: i32, offset: i64, generation: u64) -> Option<i64> {
        let mut state = self.inner.lock().ok()?;
        let p = state.partitions.get_mut(&(topic.to_string(), partition))?;
        if p.generation != generation || !p.unsettled.remove(&offset) {
            return None;
        }
        let watermark = p.unsettled.first().copied().unwrap_or(p.next);
        if watermark > p.stored {
            p.stored = watermark;
            Some(watermark)
        } else {
            None
        }
    }

    /// Whether `partition` is still assigned in `generation`.
    pub(crate) fn owns(&self, topic: &str, partition: i32, generation: u64) -> bool {
        self.inner
            .lock()
            .ok()
            .and_then(|s| {
                s.partitions
                    .get(&(topic.to_string(), partition))
                    .map(|p| p.generation == generation)
            })
            .unwrap_or(false)
    }

    /// Forgets partitions revoked from this consumer.
    pub(crate) fn revoke<'a>(&self, partitions: impl IntoIterator<Item = (&'a str, i32)>) {
        if let Ok(mut state) = self.inner.lock() {
            for (topic, partition) in partitions {
                let key = (topic.to_string(), partition);
                state.partitions.remove(&key);
                state.highs.remove(&key);
                state.stashed.remove(&key);
            }
        }
    }

    /// Records the high watermark of a partition's last fetch.
    pub(crate) fn observe_high(&self, topic: &str, partition: i32, high: i64) {
        if let Ok(mut state) = self.inner.lock() {
            state.highs.insert((topic.to_string(), partition), high);
        }
    }

    /// A record of `partition` was read and waits for a slot (`true`), or
    /// was handed out from that wait (`false`).
    pub(crate) fn stashed(&self, topic: &str, partition: i32, waiting: bool) {
        if let Ok(mut state) = self.inner.lock() {
            let key = (topic.to_string(), partition);
            if waiting {
                *state.stashed.entry(key).or_default() += 1;
            } else if let Some(n) = state.stashed.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    state.stashed.remove(&key);
                }
            }
        }
    }

    /// Nothing waits for a slot any more (the reader ended).
    pub(crate) fn clear_stash(&self) {
        if let Ok(mut state) = self.inner.lock() {
            state.stashed.clear();
        }
    }

    /// What this consumer knows of `topic` (it reads one topic).
    pub(crate) fn seen(&self, topic: &str) -> Seen {
        let Ok(state) = self.inner.lock() else {
            return Seen::default();
        };
        Seen {
            delivered: state
                .partitions
                .iter()
                .filter(|((t, _), _)| t == topic)
                .map(|((_, p), part)| (*p, (part.next, part.unsettled.len())))
                .collect(),
            highs: state
                .highs
                .iter()
                .filter(|((t, _), _)| t == topic)
                .map(|((_, p), high)| (*p, *high))
                .collect(),
            stashed: state
                .stashed
                .iter()
                .filter(|((t, _), _)| t == topic)
                .map(|((_, p), n)| (*p, *n))
                .collect(),
        }
    }

    /// Deliveries not yet settled, over all partitions.
    #[cfg(test)]
    pub(crate) fn unsettled(&self) -> usize {
        self.inner
            .lock()
            .map(|s| s.partitions.values().map(|p| p.unsettled.len()).sum())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_never_passes_unsettled_work() {
        let t = Tracker::default();
        let g = t.deliver("t", 0, 10);
        for o in 11..15 {
            assert_eq!(t.deliver("t", 0, o), g);
        }
        // 12 and 11 settle first: 10 still holds the watermark.
        assert_eq!(t.settle("t", 0, 12, g), None);
        assert_eq!(t.settle("t", 0, 11, g), None);
        // 10 settles: everything up to 13 (exclusive) is done.
        assert_eq!(t.settle("t", 0, 10, g), Some(13));
        assert_eq!(t.settle("t", 0, 14, g), None);
        assert_eq!(t.settle("t", 0, 13, g), Some(15));
        assert_eq!(t.unsettled(), 0);
        // A second settle of the same offset changes nothing.
        assert_eq!(t.settle("t", 0, 13, g), None);
    }

    #[test]
    fn partitions_are_independent_and_revokes_drop_late_settles() {
        let t = Tracker::default();
        let a = t.deliver("t", 0, 0);
        let b = t.deliver("t", 1, 5);
        assert_eq!(t.settle("t", 1, 5, b), Some(6));
        t.revoke([("t", 0)]);
        assert_eq!(t.settle("t", 0, 0, a), None, "revoked: a late settle is dropped");
        // Assigned again: a new generation; the old delivery cannot settle it.
        let again = t.deliver("t", 0, 0);
        assert_ne!(again, a);
        assert_eq!(t.settle("t", 0, 0, a), None);
        assert_eq!(t.settle("t", 0, 0, again), Some(1));
    }

    #[test]
    fn what_it_has_seen_is_per_topic_and_revokes_forget_it() {
        let t = Tracker::default();
        let g = t.deliver("t", 0, 4);
        t.deliver("t", 0, 5);
        t.deliver("other", 0, 9);
        t.observe_high("t", 0, 8);
        t.observe_high("t", 1, 3);
        t.stashed("t", 0, true);
        t.stashed("t", 1, true);
        t.settle("t", 0, 4, g);
        let seen = t.seen("t");
        assert_eq!(seen.delivered, HashMap::from([(0, (6, 1))]));
        assert_eq!(seen.highs, HashMap::from([(0, 8), (1, 3)]));
        assert_eq!(seen.stashed, HashMap::from([(0, 1), (1, 1)]));
        t.stashed("t", 1, false);
        t.revoke([("t", 0)]);
        let seen = t.seen("t");
        assert!(seen.delivered.is_empty(), "{seen:?}");
        assert_eq!(seen.highs, HashMap::from([(1, 3)]));
        assert!(seen.stashed.is_empty(), "a revoke forgets what waited: {seen:?}");
        t.stashed("t", 1, true);
        t.clear_stash();
        assert!(t.seen("t").stashed.is_empty());
    }
}
