//! Reading a topic's dead letters back ([`KafkaTransport::dead_letters`]).
//!
//! Dead letters are records of `<prefix>.dlq.<topic>` (one partition),
//! written by the acker (a message that struck out `max_deliveries` times)
//! and by the queue reader (a record that is not an envelope), with the
//! headers of [`crate::names`]. They are read with a consumer outside any
//! group, from the beginning: listing them moves nothing.

use std::time::{Duration, Instant};

use multiagents_core::transport::DeadLetter;
use multiagents_core::{Envelope, Result, validate};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaTransport;
use crate::names;

/// How long to wait for more once every partition's end was read.
const IDLE: Duration = Duration::from_millis(300);

impl KafkaTransport {
    /// Up to `count` dead letters of `topic`, oldest first. `id` is the
    /// dead letter's `partition/offset`; `original_id` the original's
    /// `kafka-topic/partition/offset`.
    ///
    /// # Errors
    /// `InvalidInput` for a bad topic; `Unavailable` or `Timeout` when the
    /// brokers cannot be reached.
    pub async fn dead_letters(&self, topic: &str, count: usize) -> Result<Vec<DeadLetter>> {
        const OP: &str = "kafka.dead_letters";
        validate::topic(topic).map_err(|e| e.with_operation(OP))?;
        let shared = &self.shared;
        let kafka_topic = shared.names.dead_letters(topic);
        shared.topics.ensure_ordered(&[&kafka_topic]).await?;
        let consumer = crate::closing::Closing::new(crate::client::plain_consumer(&shared.config)?);
        let timeout = shared.config.request_timeout;
        let (consumer, ends) = crate::blocking::off_runtime(OP, move || {
            let mut ends = Vec::new();
            let mut list = TopicPartitionList::new();
            for (p, low, high) in crate::blocking::watermarks(&*consumer, &kafka_topic, timeout, OP)? {
                if high > low {
                    ends.push((p, high));
                    list.add_partition_offset(&kafka_topic, p, Offset::Offset(low))
                        .map_err(|e| crate::error::kafka(OP, e))?;
                }
            }
            consumer.assign(&list).map_err(|e| crate::error::kafka(OP, e))?;
            Ok((consumer, ends))
        })
        .await?;
        let wire_max = shared.wire_max();
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut read_to: Vec<(i32, i64)> = ends.iter().map(|(p, _)| (*p, -1)).collect();
        while out.len() < count && !ends.is_empty() {
            let at_ends = ends
                .iter()
                .all(|(p, high)| read_to.iter().any(|(q, at)| q == p && *at + 1 >= *high));
            let wait = if at_ends {
                IDLE
            } else {
                deadline.saturating_duration_since(Instant::now())
            };
            let Ok(m) = tokio::time::timeout(wait, consumer.recv()).await else {
                break;
            };
            let m = m.map_err(|e| crate::error::kafka(OP, e))?;
            if let Some(slot) = read_to.iter_mut().find(|(q, _)| *q == m.partition()) {
                slot.1 = m.offset();
            }
            let header = |name: &str| {
                m.headers()
                    .and_then(|h| h.iter().find(|h| h.key == name).and_then(|h| h.value))
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            out.push(DeadLetter::new(
                format!("{}/{}", m.partition(), m.offset()),
                header(names::GROUP),
                header(names::ORIGIN),
                header(names::DELIVERIES).parse().unwrap_or(0),
                header(names::REASON),
                Envelope::from_wire(m.payload().unwrap_or_default(), wire_max).ok(),
            ));
        }
        tokio::task::spawn_blocking(move || drop(consumer));
        Ok(out)
    }
}
