//! The changelog topic's I/O: appending changes to one partition (and
//! learning their offsets), and the follower that reads every partition
//! from the beginning into the [`View`], saying how far it has read.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use multiagents_core::{Error, ErrorKind, Result};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::record::Change;
use super::view::View;
use crate::config::KafkaConfig;
use crate::producer::delivered;

/// Appends `changes` to partition `p` of `topic`, in order, and returns
/// their offsets once the brokers have them all.
///
/// # Errors
/// The first failure; changes before it may be stored (each is read back
/// and judged by the fold, so nothing is acknowledged on a guess).
pub(crate) async fn append(
    producer: &crate::producer::Producer,
    topic: &str,
    p: i32,
    changes: &[Change],
) -> Result<Vec<i64>> {
    producer
        .send(|used| async move { append_with(&used, topic, p, changes).await })
        .await
}

async fn append_with(producer: &FutureProducer, topic: &str, p: i32, changes: &[Change]) -> Result<Vec<i64>> {
    const OP: &str = "kafka.store.append";
    let mut pending: Vec<DeliveryFuture> = Vec::with_capacity(changes.len());
    for change in changes {
        let (key, value, headers) = change.encode();
        let owned = crate::headers::owned(&headers);
        let mut record = FutureRecord::to(topic)
            .partition(p)
            .key(key.as_bytes())
            .headers(owned);
        if let Some(v) = value.as_deref() {
            record = record.payload(v);
        }
        loop {
            match producer.send_result(record) {
                Ok(future) => {
                    pending.push(future);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => {
                    let e = crate::producer::refused(delivered(pending).await, e);
                    return Err(crate::error::kafka(OP, e).with_context("partition", p));
                }
            }
        }
    }
    delivered(pending)
        .await
        .map_err(|e| crate::error::kafka(OP, e).with_context("partition", p))
}

/// How far the follower has read: per partition, the next offset to read.
#[derive(Clone)]
pub(crate) struct Progress {
    read: Arc<Vec<watch::Sender<i64>>>,
}

impl Progress {
    fn new(partitions: i32) -> Progress {
        let n = usize::try_from(partitions.max(1)).unwrap_or(1);
        Progress {
            read: Arc::new((0..n).map(|_| watch::Sender::new(0)).collect()),
        }
    }

    /// Waits until the record at `offset` of `p` is folded into the view.
    ///
    /// # Errors
    /// `Timeout` (retryable) after `limit`, naming how far the view got.
    pub(crate) async fn past(&self, p: i32, offset: i64, limit: Duration) -> Result<()> {
        let Some(read) = usize::try_from(p).ok().and_then(|i| self.read.get(i)) else {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!("kafka store: no partition {p}"),
            ));
        };
        let mut rx = read.subscribe();
        let from = *rx.borrow();
        match tokio::time::timeout(limit, rx.wait_for(|next| *next > offset)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(crate::error::closed("kafka.store.read")),
            Err(_) => {
                let at = *read.borrow();
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "kafka store: the changelog was not read up to offset {offset} of partition {p} within {limit:?} (read up to {at}){}",
                        if at == from { STILL } else { "" }
                    ),
                )
                .with_operation("kafka.store.read"))
            }
        }
    }
}

/// Said of a wait during which the follower read nothing of a partition
/// whose record the broker had acknowledged.
const STILL: &str = "; nothing of the partition arrived meanwhile, though the broker acknowledged that record (its leader unreachable, or a broker that answers fetches empty: Tansu does when listing a partition takes longer than fetch_wait; see docs/kafka.md)";

impl Progress {
    /// As [`past`](Self::past), for a long read (opening: the whole
    /// changelog): it fails only when the follower makes no progress on
    /// `p` for `stall`.
    ///
    /// # Errors
    /// `Timeout` (retryable) after `stall` without progress.
    pub(crate) async fn past_while_moving(&self, p: i32, offset: i64, stall: Duration) -> Result<()> {
        let Some(read) = usize::try_from(p).ok().and_then(|i| self.read.get(i)) else {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!("kafka store: no partition {p}"),
            ));
        };
        let mut rx = read.subscribe();
        loop {
            if *rx.borrow_and_update() > offset {
                return Ok(());
            }
            match tokio::time::timeout(stall, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(crate::error::closed("kafka.store.read")),
                Err(_) => {
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "kafka store: reading partition {p} of the changelog made no progress for {stall:?} (at offset {}, reading up to {offset}){STILL}",
                            *read.borrow()
                        ),
                    )
                    .with_operation("kafka.store.read"));
                }
            }
        }
    }
}

/// Starts the follower of `topic` (every partition, from the beginning).
///
/// # Errors
/// Creating or assigning the consumer.
pub(crate) fn follow(
    config: &KafkaConfig,
    topic: &str,
    view: Arc<RwLock<View>>,
    closed: CancellationToken,
) -> Result<Progress> {
    let partitions = view.read().map(|v| v.partitions()).unwrap_or(1);
    let consumer = crate::closing::Closing::new(crate::client::plain_consumer(config)?);
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| crate::error::kafka("kafka.store.follow", e))?;
    }
    consumer
        .assign(&list)
        .map_err(|e| crate::error::kafka("kafka.store.follow", e).with_context("topic", topic))?;
    let progress = Progress::new(partitions);
    let out = progress.clone();
    tokio::spawn(async move {
        loop {
            let m = tokio::select! {
                m = consumer.recv() => m,
                () = closed.cancelled() => return,
            };
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "kafka store: reading the changelog");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let headers = crate::headers::read(&m);
            let (p, offset) = (m.partition(), m.offset());
            match Change::decode(m.key().unwrap_or_default(), m.payload(), &headers) {
                Ok(change) => {
                    if let Ok(mut view) = view.write() {
                        view.apply(p, offset, change);
                    }
                }
                Err(why) => {
                    tracing::warn!(partition = p, offset, %why, "kafka store: a changelog record that is not ours; skipped")
                }
            }
            if let Some(read) = usize::try_from(p).ok().and_then(|i| progress.read.get(i)) {
                read.send_replace(offset + 1);
            }
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use multiagents_core::ErrorKind;

    use super::Progress;

    #[tokio::test]
    async fn a_wait_that_saw_nothing_arrive_says_the_broker_answered_empty() {
        let progress = Progress::new(2);
        let err = progress
            .past(1, 5, Duration::from_millis(20))
            .await
            .expect_err("nothing read");
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert!(err.is_retryable(), "{err}");
        assert!(err.message().contains("read up to 0"), "{err}");
        assert!(err.message().contains("answers fetches empty"), "{err}");
    }

    #[tokio::test]
    async fn a_wait_that_saw_records_arrive_is_only_late() {
        let progress = Progress::new(1);
        let mover = progress.clone();
        let moving = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            mover.read[0].send_replace(3);
        });
        let err = progress
            .past(0, 5, Duration::from_millis(100))
            .await
            .expect_err("not far enough");
        moving.await.expect("mover");
        assert!(err.message().contains("read up to 3"), "{err}");
        assert!(!err.message().contains("answers fetches empty"), "{err}");
        progress.read[0].send_replace(6);
        progress
            .past(0, 5, Duration::from_millis(100))
            .await
            .expect("read past it");
    }
}
