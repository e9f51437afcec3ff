//! A queue consumer: one member of a Kafka consumer group, handing out
//! records while fewer than `max_in_flight` are unsettled, each with a
//! [`Ticket`] that settles it into the partition's watermark ([`Tracker`]).
//!
//! * **Commits.** Offsets are stored only as watermarks (never past
//!   unsettled work). librdkafka commits what is stored every second, and
//!   the stored offsets of revoked partitions before it lets them go
//!   (`enable.auto.commit`).
//! * **Backpressure without leaving the group.** The consumer is polled
//!   all the time (rebalances are served only while it is polled). When
//!   every in-flight slot is taken, its partitions are paused and a record
//!   already fetched waits in a small stash; they resume when a slot frees.
//! * **Revokes.** A revoked partition is forgotten: its unsettled tickets
//!   settle nothing, and its new owner redelivers from the watermark.
//! * **Leaving.** The consumer closes on a blocking thread (librdkafka's
//!   close waits for the group to let it go) when the last holder drops it:
//!   the reader, or a ticket still publishing a copy.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use multiagents_core::Result;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, Statistics, TopicPartitionList};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::tracker::Tracker;
use crate::closing::Closing;
use crate::config::KafkaConfig;

/// The consumer context: keeps the [`Tracker`] in step with rebalances,
/// and says when the consumer first got its assignment (joined).
pub(crate) struct Context {
    tracker: Arc<Tracker>,
    joined: watch::Sender<bool>,
}

impl ClientContext for Context {
    /// librdkafka's statistics (every `statistics.interval.ms`): the high
    /// watermark of each assigned partition's last fetch, for queue depths.
    /// Brokers answer `ListOffsets` for it too, but Tansu's answer is wrong
    /// after a batch of several records; its fetch responses are right.
    fn stats(&self, statistics: Statistics) {
        for (name, topic) in &statistics.topics {
            for (id, p) in &topic.partitions {
                if *id >= 0 && p.desired && p.hi_offset >= 0 {
                    self.tracker.observe_high(name, *id, p.hi_offset);
                }
            }
        }
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            // librdkafka commits the stored watermarks of these partitions
            // before it lets them go; late settles then change nothing.
            let elements = list.elements();
            if !elements.is_empty() {
                // Worth an info line: the acked deliveries above a revoked
                // partition's watermark are read again by its next owner
                // (the chaos harness reads this line to explain repeats).
                tracing::info!(
                    partitions = elements.len(),
                    "kafka: partitions revoked by a rebalance; deliveries not yet committed will be read again"
                );
            }
            self.tracker
                .revoke(elements.iter().map(|e| (e.topic(), e.partition())));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            self.joined.send_replace(true);
        }
    }
}

/// A group member, closed (bounded) off the async threads whoever drops
/// it last.
pub(crate) type Member = Closing<StreamConsumer<Context>>;

/// One record read, with what settles it.
pub(crate) struct Received {
    pub(crate) topic: String,
    pub(crate) key: String,
    pub(crate) value: Bytes,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) ticket: Ticket,
}

impl Received {
    /// The value of header `name`.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        crate::headers::find(&self.headers, name)
    }
}

/// Settles one record: its offset leaves the partition's unsettled set,
/// and the watermark is stored when it moves. Dropping it unsettled frees
/// its in-flight slot and leaves the offset unsettled (the record is
/// redelivered when the partition moves or the consumer restarts).
pub(crate) struct Ticket {
    tracker: Arc<Tracker>,
    consumer: Weak<Member>,
    topic: String,
    partition: i32,
    offset: i64,
    generation: u64,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Ticket {
    /// Settles the record. A record of a partition this consumer no longer
    /// owns is left to its new owner.
    pub(crate) fn settle(&self) {
        self.release();
        let Some(watermark) = self
            .tracker
            .settle(&self.topic, self.partition, self.offset, self.generation)
        else {
            return;
        };
        let Some(consumer) = self.consumer.upgrade() else {
            return;
        };
        let mut list = TopicPartitionList::new();
        let stored = list
            .add_partition_offset(&self.topic, self.partition, Offset::Offset(watermark))
            .and_then(|()| consumer.store_offsets(&list));
        if let Err(e) = stored {
            // Not assigned any more (a revoke raced this settle): the new
            // owner redelivers from the committed watermark.
            tracing::debug!(error = %e, topic = %self.topic, partition = self.partition, "kafka: storing a watermark");
        }
    }

    /// Whether the partition is still this consumer's, in the assignment
    /// this record was read in (otherwise its new owner has it).
    pub(crate) fn is_current(&self) -> bool {
        self.tracker.owns(&self.topic, self.partition, self.generation)
    }

    /// Frees the in-flight slot without settling.
    pub(crate) fn release(&self) {
        if let Ok(mut permit) = self.permit.lock() {
            permit.take();
        }
    }

    /// The consumer, held alive by the caller (a settle after a republish
    /// must happen before the consumer leaves its group).
    pub(crate) fn hold(&self) -> Option<Arc<Member>> {
        self.consumer.upgrade()
    }

    /// Where the record was, for messages: `topic/partition/offset`.
    pub(crate) fn origin(&self) -> String {
        format!("{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

/// What [`start`] hands back: the records, and whether the consumer has
/// joined its group (got its first assignment).
pub(crate) struct Reading {
    pub(crate) records: mpsc::Receiver<Result<Received>>,
    pub(crate) joined: watch::Receiver<bool>,
    /// Its partitions' watermarks (and what it has seen, for depths).
    pub(crate) tracker: Arc<Tracker>,
}

/// How often librdkafka reports a consumer's statistics (the fetched high
/// watermarks queue depths use): depths are at most this old.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// Joins `group` on `topics` and reads into a channel of `max_in_flight`.
/// The reader stops when the receiver is dropped or `closed` fires.
pub(crate) fn start(
    config: &KafkaConfig,
    group: &str,
    topics: &[&str],
    max_in_flight: usize,
    closed: CancellationToken,
) -> Result<Reading> {
    let tracker = Arc::new(Tracker::default());
    let (joined_tx, joined) = watch::channel(false);
    let consumer: StreamConsumer<Context> = crate::client::queue_consumer(
        config,
        group,
        Context {
            tracker: tracker.clone(),
            joined: joined_tx,
        },
        Some(STATS_EVERY),
    )?;
    consumer
        .subscribe(topics)
        .map_err(|e| crate::error::kafka("kafka.subscribe", e).with_context("group", group))?;
    let member = Arc::new(Closing::new(consumer));
    let slots = Arc::new(Semaphore::new(max_in_flight.clamp(1, Semaphore::MAX_PERMITS)));
    let (tx, rx) = mpsc::channel(max_in_flight.clamp(1, 4096));
    let reader = Reader {
        member,
        tracker: tracker.clone(),
        slots,
        tx,
        stash: VecDeque::new(),
        paused: false,
    };
    tokio::spawn(reader.run(closed));
    Ok(Reading {
        records: rx,
        joined,
        tracker,
    })
}

/// A record read but not handed out yet (no free slot).
struct Stashed {
    topic: String,
    partition: i32,
    offset: i64,
    generation: u64,
    key: String,
    value: Bytes,
    headers: Vec<(String, String)>,
}

struct Reader {
    member: Arc<Member>,
    tracker: Arc<Tracker>,
    slots: Arc<Semaphore>,
    tx: mpsc::Sender<Result<Received>>,
    /// Records fetched while every slot was taken (a few: the partitions
    /// are paused meanwhile).
    stash: VecDeque<Stashed>,
    paused: bool,
}

impl Drop for Reader {
    fn drop(&mut self) {
        // Its stash goes with it (the tracker may outlive it in the consumer).
        self.tracker.clear_stash();
    }
}

impl Reader {
    async fn run(mut self, closed: CancellationToken) {
        loop {
            // Hand out what waits, as slots allow.
            while !self.stash.is_empty() {
                let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                    break;
                };
                if !self.hand_out(permit, &closed).await {
                    return;
                }
            }
            let full = !self.stash.is_empty() || self.slots.available_permits() == 0;
            self.pause(full);
            tokio::select! {
                m = self.member.recv() => match m {
                    Ok(m) => {
                        let stashed = self.stashed(&m);
                        self.tracker.stashed(&stashed.topic, stashed.partition, true);
                        self.stash.push_back(stashed);
                        // A rebalance may have assigned partitions since the pause.
                        if self.paused {
                            self.paused = false;
                            self.pause(true);
                        }
                    }
                    Err(e) => {
                        // Transient (a broker restarting, a rebalance):
                        // librdkafka recovers by itself. Say so, go on.
                        tracing::warn!(error = %e, "kafka: consuming");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                // A slot freed: hand out what waits, or resume (the permit
                // goes back when it is dropped here).
                permit = self.slots.clone().acquire_owned(), if full => match permit {
                    Ok(permit) => {
                        if !self.hand_out(permit, &closed).await {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                () = self.tx.closed() => return,
                () = closed.cancelled() => return,
            }
        }
    }

    /// Pauses (or resumes) every assigned partition.
    fn pause(&mut self, pause: bool) {
        if pause == self.paused {
            return;
        }
        let Ok(assignment) = self.member.assignment() else {
            return;
        };
        let done = if pause {
            self.member.pause(&assignment)
        } else {
            self.member.resume(&assignment)
        };
        match done {
            Ok(()) => self.paused = pause,
            Err(e) => tracing::debug!(error = %e, pause, "kafka: pausing partitions"),
        }
    }

    fn stashed(&self, m: &BorrowedMessage<'_>) -> Stashed {
        let headers = crate::headers::read(m);
        let (topic, partition, offset) = (m.topic().to_string(), m.partition(), m.offset());
        Stashed {
            generation: self.tracker.deliver(&topic, partition, offset),
            topic,
            partition,
            offset,
            key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            value: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
            headers,
        }
    }

    /// Sends the first stashed record with `permit`; `false` when the
    /// subscription is gone.
    async fn hand_out(&mut self, permit: OwnedSemaphorePermit, closed: &CancellationToken) -> bool {
        let Some(s) = self.stash.pop_front() else {
            return true;
        };
        self.tracker.stashed(&s.topic, s.partition, false);
        let received = Received {
            topic: s.topic.clone(),
            key: s.key,
            value: s.value,
            headers: s.headers,
            ticket: Ticket {
                tracker: self.tracker.clone(),
                consumer: Arc::downgrade(&self.member),
                topic: s.topic,
                partition: s.partition,
                offset: s.offset,
                generation: s.generation,
                permit: Mutex::new(Some(permit)),
            },
        };
        tokio::select! {
            sent = self.tx.send(Ok(received)) => sent.is_ok(),
            () = closed.cancelled() => false,
        }
    }
}
