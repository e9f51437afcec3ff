//! Queue depths: how many records of a queue its group has not settled.
//!
//! * **From the brokers**, for every partition: its high watermark, and the
//!   group's committed offset (the contiguous watermark its owner stored,
//!   committed every second). What lies between is ready, or held by a
//!   member of another instance: this instance cannot tell which, so it
//!   counts it as ready.
//! * **From this instance's own members of the group**, for the partitions
//!   they have read: what they hold unsettled is in flight, what they read
//!   and hold back for a free slot is ready, and their offsets are fresher
//!   than the committed ones. Their fetches also carry high watermarks
//!   (librdkafka's statistics): Tansu answers `ListOffsets` wrongly after a
//!   batch of several records, and the higher figure wins.
//! * Nacked records waiting for their time are in `<prefix>.delay`, which
//!   every queue shares; they are not counted (`delayed` is 0).
//! * A group that is not listed by the brokers, has committed nothing and
//!   has no member here has no depth (`None`); the listing (which asks
//!   every broker) is asked for only then, within a second.
//! * One question per group at a time: a second one, while the first is
//!   still with the brokers (a scrape that gave up leaves it running), is
//!   answered with the last figures, so a broker outage does not pile up
//!   blocking threads.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use multiagents_core::{QueueDepth, Result, validate};
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::Shared;
use super::tracker::{Seen, Tracker};
use crate::blocking::{off_runtime, watermarks};
use crate::closing::Closing;

/// At most this many inspecting clients are kept (one per group asked
/// about); past it, one is made for the question and closed after.
const KEPT_INSPECTORS: usize = 64;

/// The longest the group listing may take (it asks every broker): only
/// for a group that has committed nothing and has no member here.
const LISTING_TIMEOUT: Duration = Duration::from_secs(1);

/// This instance's members of each group, the clients that ask the
/// brokers about a group, and the questions under way.
#[derive(Default)]
pub(crate) struct Depths {
    members: Mutex<HashMap<String, Vec<Weak<Tracker>>>>,
    inspectors: Mutex<HashMap<String, Arc<Inspector>>>,
    /// Groups whose brokers' figures are being asked for now: a second
    /// question gets the last answer instead of another blocking thread
    /// (a scrape that gave up leaves its question running).
    asking: Mutex<HashSet<String>>,
    last: Mutex<HashMap<String, Option<QueueDepth>>>,
}

/// A client asking about one group; closed (which blocks) off the async
/// threads, whoever drops it last (see `closing`).
pub(crate) type Inspector = Closing<BaseConsumer>;

/// Marks a group as being asked about until dropped (with the blocking
/// work that asks).
struct Asking {
    shared: Arc<Shared>,
    group: String,
}

impl Drop for Asking {
    fn drop(&mut self) {
        if let Ok(mut asking) = self.shared.depths.asking.lock() {
            asking.remove(&self.group);
        }
    }
}

impl Depths {
    /// A member of `group` (a Kafka group id) started here.
    pub(crate) fn register(&self, group: &str, tracker: &Arc<Tracker>) {
        if let Ok(mut members) = self.members.lock() {
            let list = members.entry(group.to_string()).or_default();
            list.retain(|t| t.strong_count() > 0);
            list.push(Arc::downgrade(tracker));
        }
    }

    /// The live members of `group` here.
    fn members(&self, group: &str) -> Vec<Arc<Tracker>> {
        self.members
            .lock()
            .ok()
            .and_then(|m| m.get(group).map(|l| l.iter().filter_map(Weak::upgrade).collect()))
            .unwrap_or_default()
    }

    /// The kept client for `group`, or a new one (blocking: run it off the
    /// async threads). A closed transport keeps none.
    fn inspector(shared: &Shared, group: &str) -> Result<Arc<Inspector>> {
        if let Some(c) = shared
            .depths
            .inspectors
            .lock()
            .ok()
            .and_then(|k| k.get(group).cloned())
        {
            return Ok(c);
        }
        let made = Arc::new(Closing::new(crate::client::inspector(&shared.config, group)?));
        let mut kept = shared.depths.inspectors.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < KEPT_INSPECTORS && !shared.closed.is_cancelled() {
            kept.insert(group.to_string(), made.clone());
        }
        Ok(made)
    }

    /// Lets the inspecting clients go (the transport is closing); each
    /// closes on a blocking thread.
    pub(crate) fn close(&self) {
        if let Ok(mut kept) = self.inspectors.lock() {
            kept.clear();
        }
    }
}

/// One partition as the brokers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Partition {
    id: i32,
    low: i64,
    high: i64,
    /// The group's committed offset, when it has one.
    committed: Option<i64>,
}

/// The depth of queue `topic` for `group`.
pub(super) async fn queue_depth(
    shared: &Arc<Shared>,
    topic: &str,
    group: &str,
) -> Result<Option<QueueDepth>> {
    const OP: &str = "kafka.queue_depth";
    validate::topic(topic).map_err(|e| e.with_operation(OP))?;
    validate::group(group).map_err(|e| e.with_operation(OP))?;
    shared.check_open(OP)?;
    let kafka_topic = shared.names.queue(topic);
    let group_id = shared.names.group(topic, group);
    let members = shared.depths.members(&group_id);
    {
        let mut asking = shared.depths.asking.lock().unwrap_or_else(|p| p.into_inner());
        if !asking.insert(group_id.clone()) {
            let last = shared.depths.last.lock().unwrap_or_else(|p| p.into_inner());
            return Ok(last.get(&group_id).copied().flatten());
        }
    }
    let asking = Asking {
        shared: shared.clone(),
        group: group_id.clone(),
    };
    let (name, id, alone) = (kafka_topic.clone(), group_id.clone(), members.is_empty());
    let (known, partitions) = off_runtime(OP, move || {
        // Held until the brokers have answered, whether or not anyone waits.
        let asking = asking;
        let shared = &asking.shared;
        let inspector = Depths::inspector(shared, &id)?;
        let client: &BaseConsumer = &inspector;
        let timeout = shared.config.request_timeout;
        let failed = |e| crate::error::kafka(OP, e).with_context("group", &id);
        let marks = watermarks(client, &name, timeout, OP)?;
        let mut list = TopicPartitionList::new();
        for (p, _, _) in &marks {
            list.add_partition(&name, *p);
        }
        let committed = if marks.is_empty() {
            TopicPartitionList::new()
        } else {
            client.committed_offsets(list, timeout).map_err(failed)?
        };
        let partitions = marks
            .into_iter()
            .map(|(id, low, high)| Partition {
                id,
                low,
                high,
                committed: committed
                    .find_partition(&name, id)
                    .and_then(|e| e.offset().to_raw())
                    .filter(|o| *o >= 0),
            })
            .collect::<Vec<_>>();
        // Whether the group exists at all: it has committed, has a member
        // here, or the brokers list it (asked only then: every broker).
        let known = !alone
            || partitions.iter().any(|p| p.committed.is_some())
            || client
                .fetch_group_list(Some(&id), LISTING_TIMEOUT.min(timeout))
                .is_ok_and(|l| !l.groups().is_empty());
        Ok((known, partitions))
    })
    .await
    .map_err(|e| e.with_context("topic", topic).with_context("group", group))?;
    let depth = known.then(|| {
        let seen: Vec<Seen> = members.iter().map(|t| t.seen(&kafka_topic)).collect();
        count(&partitions, &seen)
    });
    if let Ok(mut last) = shared.depths.last.lock() {
        last.insert(group_id, depth);
    }
    Ok(depth)
}

/// The depth from the brokers' `partitions` and what members here have `seen`.
fn count(partitions: &[Partition], seen: &[Seen]) -> QueueDepth {
    let (mut ready, mut in_flight) = (0i64, 0i64);
    let n = |x: usize| i64::try_from(x).unwrap_or(i64::MAX);
    for p in partitions {
        let high = seen
            .iter()
            .filter_map(|s| s.highs.get(&p.id).copied())
            .fold(p.high, i64::max);
        // The member that read furthest in it (after a move, the old
        // owner has forgotten the partition).
        let reader = seen
            .iter()
            .filter_map(|s| s.delivered.get(&p.id).map(|d| (s, *d)))
            .max_by_key(|(_, (next, _))| *next);
        match reader {
            Some((s, (next, unsettled))) => {
                // Read but held back for a slot: unsettled, not handed out.
                let waiting = s.stashed.get(&p.id).copied().unwrap_or(0).min(unsettled);
                ready += (high - next).max(0) + n(waiting);
                in_flight += n(unsettled - waiting);
            }
            // Records the brokers deleted (retention) past the committed
            // offset are not waiting: a consumer starts at the low mark.
            None => ready += (high - p.committed.map_or(p.low, |c| c.max(p.low))).max(0),
        }
    }
    let size = |n: i64| usize::try_from(n.max(0)).unwrap_or(usize::MAX);
    QueueDepth::new(size(ready), size(in_flight), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(id: i32, low: i64, high: i64, committed: Option<i64>) -> Partition {
        Partition {
            id,
            low,
            high,
            committed,
        }
    }

    #[test]
    fn from_the_brokers_alone_the_lag_is_ready() {
        let d = count(
            &[part(0, 0, 10, Some(4)), part(1, 3, 8, None), part(2, 0, 0, None)],
            &[],
        );
        assert_eq!(d, QueueDepth::new(6 + 5, 0, 0));
    }

    #[test]
    fn members_here_split_what_they_hold_from_what_waits() {
        let mut seen = Seen::default();
        // Partition 0: read up to 7, 3 unsettled of which 1 held back for
        // a slot; its fetch saw 9 records (the brokers' answer is stale).
        seen.delivered.insert(0, (7, 3));
        seen.highs.insert(0, 9);
        seen.stashed.insert(0, 1);
        let d = count(&[part(0, 0, 2, Some(1)), part(1, 0, 4, Some(4))], &[seen]);
        // Ready: 9 - 7 unread + 1 held back; in flight: 3 - 1.
        assert_eq!(d, QueueDepth::new(3, 2, 0));
    }

    #[test]
    fn a_committed_offset_behind_the_low_mark_counts_from_the_low_mark() {
        let d = count(&[part(0, 10, 12, Some(4))], &[]);
        assert_eq!(d, QueueDepth::new(2, 0, 0));
    }

    #[test]
    fn the_member_that_read_furthest_counts() {
        let mut old = Seen::default();
        old.delivered.insert(0, (3, 2));
        // What the old owner held back is not the new owner's.
        old.stashed.insert(0, 2);
        let mut new = Seen::default();
        new.delivered.insert(0, (6, 1));
        let d = count(&[part(0, 0, 6, Some(2))], &[old, new]);
        assert_eq!(d, QueueDepth::new(0, 1, 0));
    }
}
