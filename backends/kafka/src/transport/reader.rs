//! A queue consumer: one member of a Kafka consumer group, reading records
//! into a channel while fewer than `max_in_flight` are unsettled, each with
//! a [`Ticket`] that settles it into the partition's watermark
//! ([`Tracker`]).
//!
//! * **Commits.** Offsets are stored only as watermarks (never past
//!   unsettled work); librdkafka commits what is stored every second, and
//!   this consumer commits synchronously before giving up a partition in a
//!   rebalance.
//! * **Revokes.** A revoked partition is forgotten: its unsettled tickets
//!   settle nothing, and its new owner redelivers from the watermark.
//! * **Leaving.** When the subscription goes away the consumer closes on a
//!   blocking thread (librdkafka's close waits for the group to let it go),
//!   after the last ticket that holds it.

use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use multiagents_core::Result;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::tracker::Tracker;
use crate::config::KafkaConfig;

/// The consumer context: keeps the [`Tracker`] in step with rebalances,
/// and says when the consumer first got its assignment (joined).
pub(crate) struct Context {
    tracker: Arc<Tracker>,
    joined: watch::Sender<bool>,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            // Commit the stored watermarks while the partitions are still
            // ours, then forget them: late settles change nothing.
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error = %e, "kafka: commit before a revoke");
            }
            let elements = list.elements();
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

pub(crate) type Consumer_ = StreamConsumer<Context>;

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
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Settles one record: its offset leaves the partition's unsettled set,
/// and the watermark is stored when it moves. Dropping it unsettled frees
/// its in-flight slot and leaves the offset unsettled (the record is
/// redelivered when the partition moves or the consumer restarts).
pub(crate) struct Ticket {
    tracker: Arc<Tracker>,
    consumer: Weak<Consumer_>,
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
        close_off_runtime(consumer);
    }

    /// Frees the in-flight slot without settling.
    pub(crate) fn release(&self) {
        if let Ok(mut permit) = self.permit.lock() {
            permit.take();
        }
    }

    /// The consumer, held alive by the caller (a settle after a republish
    /// must happen before the consumer leaves its group).
    pub(crate) fn hold(&self) -> Option<Arc<Consumer_>> {
        self.consumer.upgrade()
    }

    /// Where the record was, for messages: `topic/partition/offset`.
    pub(crate) fn origin(&self) -> String {
        format!("{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

/// Drops a consumer reference; if it is the last, the close (which blocks
/// until the group has let it go) runs on a blocking thread.
pub(crate) fn close_off_runtime(consumer: Arc<Consumer_>) {
    if Arc::strong_count(&consumer) > 1 {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn_blocking(move || drop(consumer));
        }
        Err(_) => drop(consumer),
    }
}

/// What [`start`] hands back: the records, and whether the consumer has
/// joined its group (got its first assignment).
pub(crate) struct Reading {
    pub(crate) records: mpsc::Receiver<Result<Received>>,
    pub(crate) joined: watch::Receiver<bool>,
}

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
    let consumer: Consumer_ = crate::client::queue_consumer(
        config,
        group,
        Context {
            tracker: tracker.clone(),
            joined: joined_tx,
        },
    )?;
    consumer
        .subscribe(topics)
        .map_err(|e| crate::error::kafka("kafka.subscribe", e).with_context("group", group))?;
    let consumer = Arc::new(consumer);
    let (tx, rx) = mpsc::channel(max_in_flight.min(4096));
    let slots = Arc::new(Semaphore::new(max_in_flight));
    tokio::spawn(read(consumer, tracker, slots, tx, closed));
    Ok(Reading { records: rx, joined })
}

async fn read(
    consumer: Arc<Consumer_>,
    tracker: Arc<Tracker>,
    slots: Arc<Semaphore>,
    tx: mpsc::Sender<Result<Received>>,
    closed: CancellationToken,
) {
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = tx.closed() => break,
            () = closed.cancelled() => break,
        };
        let received = tokio::select! {
            m = consumer.recv() => match m {
                Ok(m) => {
                    let headers = m.headers().map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()))
                            .collect()
                    }).unwrap_or_default();
                    let (topic, partition, offset) = (m.topic().to_string(), m.partition(), m.offset());
                    let generation = tracker.deliver(&topic, partition, offset);
                    Ok(Received {
                        key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                        value: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
                        headers,
                        ticket: Ticket {
                            tracker: tracker.clone(),
                            consumer: Arc::downgrade(&consumer),
                            topic: topic.clone(),
                            partition,
                            offset,
                            generation,
                            permit: Mutex::new(Some(permit)),
                        },
                        topic,
                    })
                }
                Err(e) => {
                    // Transient (a broker restarting, a rebalance): librdkafka
                    // recovers by itself. Say so, and keep reading.
                    tracing::warn!(error = %e, "kafka: consuming");
                    drop(permit);
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = tx.closed() => break,
            () = closed.cancelled() => break,
        };
        if tx.send(received).await.is_err() {
            break;
        }
    }
    close_off_runtime(consumer);
}
