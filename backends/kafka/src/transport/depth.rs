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
//!   has no member here has no depth (`None`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use multiagents_core::{QueueDepth, Result, validate};
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::Shared;
use super::tracker::{Seen, Tracker};
use crate::blocking::{off_runtime, watermarks};

/// At most this many inspecting clients are kept (one per group asked
/// about); past it, one is made for the question and closed after.
const KEPT_INSPECTORS: usize = 64;

/// This instance's members of each group, and the clients that ask the
/// brokers about a group.
#[derive(Default)]
pub(crate) struct Depths {
    members: Mutex<HashMap<String, Vec<Weak<Tracker>>>>,
    inspectors: Mutex<HashMap<String, Arc<BaseConsumer>>>,
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

    fn inspector(&self, shared: &Shared, group: &str) -> Result<Arc<BaseConsumer>> {
        let mut kept = self.inspectors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = kept.get(group) {
            return Ok(c.clone());
        }
        let made = Arc::new(crate::client::inspector(&shared.config, group)?);
        if kept.len() < KEPT_INSPECTORS {
            kept.insert(group.to_string(), made.clone());
        }
        Ok(made)
    }

    /// Closes the inspecting clients (the transport is closing).
    pub(crate) fn close(&self) -> Vec<Arc<BaseConsumer>> {
        self.inspectors
            .lock()
            .map(|mut kept| kept.drain().map(|(_, c)| c).collect())
            .unwrap_or_default()
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
    let inspector = shared.depths.inspector(shared, &group_id)?;
    let timeout = shared.config.request_timeout;
    let (name, id) = (kafka_topic.clone(), group_id.clone());
    let (listed, partitions) = off_runtime(OP, move || {
        let failed = |e| crate::error::kafka(OP, e).with_context("group", &id);
        let listed = !inspector
            .fetch_group_list(Some(&id), timeout)
            .map_err(failed)?
            .groups()
            .is_empty();
        let marks = watermarks(&*inspector, &name, timeout, OP)?;
        let mut list = TopicPartitionList::new();
        for (p, _, _) in &marks {
            list.add_partition(&name, *p);
        }
        let committed = if marks.is_empty() {
            TopicPartitionList::new()
        } else {
            inspector.committed_offsets(list, timeout).map_err(failed)?
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
        Ok((listed, partitions))
    })
    .await
    .map_err(|e| e.with_context("topic", topic).with_context("group", group))?;
    let committed = partitions.iter().any(|p| p.committed.is_some());
    if !listed && !committed && members.is_empty() {
        return Ok(None);
    }
    let seen: Vec<Seen> = members.iter().map(|t| t.seen(&kafka_topic)).collect();
    Ok(Some(count(&partitions, &seen)))
}

/// The depth from the brokers' `partitions` and what members here have `seen`.
fn count(partitions: &[Partition], seen: &[Seen]) -> QueueDepth {
    let (mut ready, mut in_flight) = (0i64, 0i64);
    for p in partitions {
        let high = seen
            .iter()
            .filter_map(|s| s.highs.get(&p.id).copied())
            .fold(p.high, i64::max);
        // The member that read furthest in it (after a move, the old
        // owner has forgotten the partition).
        match seen
            .iter()
            .filter_map(|s| s.delivered.get(&p.id))
            .max_by_key(|(next, _)| *next)
        {
            Some(&(next, unsettled)) => {
                ready += (high - next).max(0);
                in_flight += i64::try_from(unsettled).unwrap_or(i64::MAX);
            }
            None => ready += (high - p.committed.unwrap_or(p.low)).max(0),
        }
    }
    // Read but held back for a slot: counted unsettled, but not handed out.
    let stashed = seen.iter().map(|s| s.stashed).sum::<usize>();
    let stashed = i64::try_from(stashed).unwrap_or(i64::MAX).min(in_flight);
    let size = |n: i64| usize::try_from(n.max(0)).unwrap_or(usize::MAX);
    QueueDepth::new(size(ready.saturating_add(stashed)), size(in_flight - stashed), 0)
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
        seen.stashed = 1;
        let d = count(&[part(0, 0, 2, Some(1)), part(1, 0, 4, Some(4))], &[seen]);
        // Ready: 9 - 7 unread + 1 held back; in flight: 3 - 1.
        assert_eq!(d, QueueDepth::new(3, 2, 0));
    }

    #[test]
    fn the_member_that_read_furthest_counts() {
        let mut old = Seen::default();
        old.delivered.insert(0, (3, 2));
        let mut new = Seen::default();
        new.delivered.insert(0, (6, 1));
        let d = count(&[part(0, 0, 6, Some(2))], &[old, new]);
        assert_eq!(d, QueueDepth::new(0, 1, 0));
    }
}
