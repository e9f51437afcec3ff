//! Settling a queue delivery.
//!
//! Kafka cannot hand one message back: its offset is committed or not, in
//! order. So a message that is not done is **copied** (same key, same
//! bytes, its delivery count in a header) and the original settled once
//! the brokers have the copy:
//!
//! | settle | the copy goes to | then |
//! |---|---|---|
//! | `ack` | — | the original is settled |
//! | `nack(0)` | its own topic | the original is settled |
//! | `nack(d)` | the delay topic, due in `d` (see `delay`) | the original is settled |
//! | given up (`Delivery::forget`: its holder's lease lapsed) | as when dropped unsettled (below) | |
//! | dropped unsettled (a strike) | its own topic, or its dead letters after `max_deliveries` strikes (the subscription's dead-letter hook is told first) | the original is settled |
//!
//! A copy that cannot be published leaves the original unsettled, so
//! nothing is lost: a nack returns the error; a dropped delivery's copy is
//! retried until it is published or the partition moves (its new owner
//! then redelivers the original).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use multiagents_core::transport::DeadLetterHook;
use multiagents_core::{Acker, Envelope, Error, ErrorKind, Result};

use super::Shared;
use super::produce::Record;
use super::reader::Ticket;
use crate::names;

/// The acker of one queue delivery.
pub(crate) struct KafkaAcker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) ticket: Arc<Ticket>,
    /// The Kafka topic it was read from.
    pub(crate) kafka_topic: String,
    /// The user's topic (for dead letters).
    pub(crate) topic: String,
    pub(crate) group: String,
    pub(crate) key: String,
    pub(crate) value: Bytes,
    /// Deliveries including this one.
    pub(crate) deliveries: u32,
    /// Earlier deliveries that ended without an ack or nack.
    pub(crate) strikes: u32,
    /// Told before a dead letter replaces the original.
    pub(crate) on_dead_letter: Option<DeadLetterHook>,
}

impl KafkaAcker {
    fn copy(&self, topic: String, strikes: u32) -> Record {
        Record::new(topic, self.key.clone(), self.value.clone())
            .with_header(names::DELIVERIES, self.deliveries)
            .with_header(names::STRIKES, strikes)
    }

    /// A strike: the copy goes back to the topic, or to its dead letters
    /// once `max_deliveries` deliveries ended this way.
    /// (The record, and whether it is a dead letter.)
    fn strike_record(&self) -> (Record, bool) {
        let strikes = self.strikes + 1;
        if strikes >= self.shared.config.max_deliveries {
            let letter = self
                .copy(self.shared.names.dead_letters(&self.topic), strikes)
                .with_header(names::REASON, "max_deliveries")
                .with_header(names::GROUP, &self.group)
                .with_header(names::ORIGIN, self.ticket.origin());
            (letter, true)
        } else {
            (self.copy(self.kafka_topic.clone(), strikes), false)
        }
    }
}

#[async_trait]
impl Acker for KafkaAcker {
    async fn ack(&self) -> Result<()> {
        self.ticket.settle();
        Ok(())
    }

    async fn nack(&self, delay: Duration) -> Result<()> {
        let record = if delay.is_zero() {
            self.copy(self.kafka_topic.clone(), self.strikes)
        } else {
            super::delay::delayed(
                &self.shared,
                self.copy(self.kafka_topic.clone(), self.strikes),
                delay,
            )
        };
        self.shared
            .replace(&self.ticket, record, false, "kafka.nack")
            .await
    }

    /// Kept while the partition stays with this consumer, in the
    /// assignment the record was read in (`Capabilities::group_hold`
    /// bounds how long that may be taken on trust).
    async fn progress(&self) -> Result<()> {
        if self.ticket.is_current() {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Timeout,
            "the record's partition was revoked from this consumer: its new owner reads it again",
        )
        .with_retryable(false)
        .with_operation("kafka.progress")
        .with_context("origin", self.ticket.origin()))
    }

    /// Handed back like a dropped delivery (a strike: a copy on its own
    /// topic, or its dead letters after `max_deliveries`), while this
    /// consumer holds the partition: Kafka redelivers nothing within an
    /// assignment, and the strike bounds a run that keeps outliving its
    /// hold. Once the partition moved, its new owner reads the original.
    fn forget(&self) {
        self.abandon();
    }

    /// A revoke is known here as soon as the reader handles it: a run's
    /// writes stop then, not at its next progress.
    fn holder(&self) -> Option<multiagents_core::worker::lease::Holder> {
        let ticket = self.ticket.clone();
        Some(Arc::new(move || ticket.is_current()))
    }

    fn abandon(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            // No runtime to republish on: the offset stays unsettled and the
            // message returns when the partition moves or the group restarts.
            self.ticket.release();
            return;
        };
        let (record, dead) = self.strike_record();
        let (shared, ticket) = (self.shared.clone(), self.ticket.clone());
        let hook = self.on_dead_letter.clone().filter(|_| dead);
        let told = hook.and_then(|h| {
            Envelope::from_wire(&self.value, shared.wire_max())
                .ok()
                .map(|e| (h, e))
        });
        let deliveries = self.deliveries;
        handle.spawn(async move {
            // The hook first, retried like the copy: a partition that
            // moved, or a closed transport, leaves the original unsettled
            // for its next owner.
            if let Some((hook, envelope)) = told {
                let tell = || hook.call(envelope.clone(), deliveries);
                let what = "kafka: the dead letter's hook failed; retrying";
                if !shared.while_held(&ticket, what, &record.topic, tell).await {
                    return;
                }
            }
            shared
                .replace_until_done(&ticket, record, dead, "kafka.strike")
                .await;
        });
    }
}
