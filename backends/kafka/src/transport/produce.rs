//! Producing records, in order, and waiting until the brokers have them.
//!
//! Records are enqueued one after another on the idempotent producer (so
//! those of one partition keep their order, also across librdkafka's
//! retries), then every acknowledgement is awaited: when [`send_all`]
//! returns `Ok`, every record is stored by the brokers. librdkafka batches
//! what is enqueued within `linger.ms` into one request per partition.

use std::time::Duration;

use bytes::Bytes;
use multiagents_core::Result;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::producer::Producer;

/// One record to produce.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) topic: String,
    pub(crate) key: String,
    pub(crate) value: Bytes,
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl Record {
    pub(crate) fn new(topic: String, key: String, value: Bytes) -> Record {
        Record {
            topic,
            key,
            value,
            headers: Vec::new(),
        }
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: impl ToString) -> Record {
        self.headers.push((name, value.to_string()));
        self
    }
}

/// Produces `records` in order and waits for every acknowledgement.
///
/// # Errors
/// The first failure (mapped by [`crate::error`]); records before it may
/// have been stored (the caller's publish is then retried as a whole:
/// at-least-once).
pub(crate) async fn send_all(producer: &Producer, records: &[Record], op: &'static str) -> Result<()> {
    producer
        .send(|used| async move { send_with(&used, records, op).await })
        .await
}

async fn send_with(producer: &FutureProducer, records: &[Record], op: &'static str) -> Result<()> {
    let mut pending: Vec<DeliveryFuture> = Vec::with_capacity(records.len());
    for r in records {
        let headers = crate::headers::owned(&r.headers);
        let mut record = FutureRecord::to(&r.topic)
            .key(r.key.as_bytes())
            .payload(r.value.as_ref())
            .headers(headers);
        loop {
            match producer.send_result(record) {
                Ok(future) => {
                    pending.push(future);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // The local queue is full: wait for what is in flight,
                    // then enqueue the rest (order is kept).
                    record = back;
                    settle(std::mem::take(&mut pending), op).await?;
                    if pending.is_empty() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                Err((e, _)) => {
                    let e = crate::producer::refused(crate::producer::delivered(pending).await, e);
                    return Err(crate::error::kafka(op, e));
                }
            }
        }
    }
    settle(pending, op).await
}

async fn settle(pending: Vec<DeliveryFuture>, op: &'static str) -> Result<()> {
    crate::producer::delivered(pending)
        .await
        .map(drop)
        .map_err(|e| crate::error::kafka(op, e))
}
