//! Queue subscriptions: the group's durable pull consumer, and a reader
//! task that pulls no more than the subscription's free `max_in_flight`
//! slots, turns messages into [`Delivery`]s and dead-letters what has
//! struck out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::kv;
use async_nats::jetstream::stream::Stream;
use futures_util::StreamExt;
use multiagents_core::transport::DeadLetterHook;
use multiagents_core::{Delivery, Envelope, Result, SubscribeOptions, Subscription};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::acker::{NackCount, NatsAcker, strikes};
use super::dead_letters::{self, Reason};
use crate::connection::Conn;
use crate::error;

/// How long one pull request waits on the server for messages.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// Pause after a failed pull before the next one.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// What a queue subscription needs of its transport.
#[derive(Clone)]
pub(super) struct Link {
    pub(super) conn: Conn,
    pub(super) stream: Stream,
    pub(super) nacks: kv::Store,
    pub(super) max_payload: usize,
}

/// One group's reader of one topic.
struct Reader {
    link: Link,
    topic: String,
    group: String,
    consumer: PullConsumer,
    /// The consumer's name, encoded for its nack records' keys.
    nacks_key: String,
    slots: Arc<Semaphore>,
    tx: mpsc::UnboundedSender<Result<Delivery>>,
    /// Told of each dead letter of this subscription before its TERM.
    on_dead_letter: Option<DeadLetterHook>,
}

pub(super) async fn subscribe(
    link: Link,
    topic: &str,
    group: &str,
    options: SubscribeOptions,
) -> Result<Subscription> {
    let consumer_name = link.conn.names.consumer(topic, group);
    let consumer = create_consumer(&link, topic, &consumer_name).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    let reader = Reader {
        link,
        topic: topic.to_string(),
        group: group.to_string(),
        consumer,
        nacks_key: NackCount::consumer_key(&consumer_name),
        slots: Arc::new(Semaphore::new(options.max_in_flight)),
        tx,
        on_dead_letter: options.on_dead_letter,
    };
    tokio::spawn(reader.run());
    let deliveries = futures_util::stream::unfold(rx, |mut rx| async move {
        let next = rx.recv().await?;
        Some((next, rx))
    });
    Ok(Subscription::new(deliveries))
}

/// The group's durable consumer on the topic, created or updated to the
/// current settings (ack timeout).
async fn create_consumer(link: &Link, topic: &str, name: &str) -> Result<PullConsumer> {
    let config = pull::Config {
        durable_name: Some(name.to_string()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: link.conn.config.ack_timeout,
        // Strikes are counted here (see the module docs), not by the server.
        max_deliver: -1,
        max_ack_pending: -1,
        filter_subject: link.conn.names.queue_subject(topic),
        deliver_policy: DeliverPolicy::All,
        ..Default::default()
    };
    link.stream.create_consumer(config).await.map_err(|e| {
        error::other("nats.subscribe", e)
            .with_context("topic", topic)
            .with_context("consumer", name)
    })
}

impl Reader {
    async fn run(self) {
        let closed = self.link.conn.closed.clone();
        tokio::select! {
            () = self.pull_forever() => {}
            () = closed.cancelled() => {}
            () = self.tx.closed() => {}
        }
    }

    /// Reserves the free slots (waiting for at least one), pulls that many
    /// messages, hands each out with one slot; slots a pull did not fill go
    /// back.
    async fn pull_forever(&self) {
        loop {
            let Ok(mut reserved) = self.slots.clone().acquire_owned().await else {
                return;
            };
            let extra = self
                .slots
                .available_permits()
                .min(self.link.conn.config.fetch_batch.saturating_sub(1));
            if extra > 0
                && let Ok(more) = self.slots.clone().try_acquire_many_owned(extra as u32)
            {
                reserved.merge(more);
            }
            if let Err(e) = self.pull(&mut reserved).await {
                tracing::warn!(error = %e, topic = %self.topic, group = %self.group, "NATS pull failed; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }

    async fn pull(&self, reserved: &mut OwnedSemaphorePermit) -> Result<()> {
        const OP: &str = "nats.pull";
        let mut batch = self
            .consumer
            .batch()
            .max_messages(reserved.num_permits())
            .expires(PULL_EXPIRES)
            .messages()
            .await
            .map_err(|e| error::other(OP, e).with_context("topic", &self.topic))?;
        while let Some(next) = batch.next().await {
            let message = next.map_err(|e| error::boxed(OP, e).with_context("topic", &self.topic))?;
            let Some(slot) = reserved.split(1) else {
                // More than asked for: leave it to the ack timeout.
                return Ok(());
            };
            // Its ack timer runs from about now (the nack count read
            // below can take a round trip).
            self.hand_out(message, slot, Instant::now()).await;
        }
        Ok(())
    }

    /// Turns `message` into a delivery, or dead-letters it.
    async fn hand_out(
        &self,
        message: async_nats::jetstream::Message,
        slot: OwnedSemaphorePermit,
        fetched: Instant,
    ) {
        let (deliveries, seq) = match message.info() {
            Ok(info) => (
                u32::try_from(info.delivered.max(1)).unwrap_or(u32::MAX),
                info.stream_sequence,
            ),
            Err(e) => {
                tracing::warn!(error = %e, "a JetStream message without delivery info; leaving it to redelivery");
                return;
            }
        };
        let wire_max = self.link.max_payload.saturating_add(super::ENVELOPE_ROOM);
        let envelope = Envelope::from_wire(&message.payload, wire_max);
        let nacks = NackCount::new(self.link.nacks.clone(), &self.nacks_key, seq);
        let nacked = if deliveries > 1 {
            nacks.read().await
        } else {
            Some(0)
        };
        let strikes = strikes(deliveries, nacked);
        // Unreadable: counted as all nacks (see `strikes`), and a nack
        // of this delivery records one more, keeping that guess.
        let nacked = nacked.unwrap_or(deliveries.saturating_sub(1));
        let reason = match &envelope {
            Err(_) => Some(Reason::NotAnEnvelope),
            Ok(_) if strikes >= self.link.conn.config.max_deliveries => Some(Reason::MaxDeliveries),
            Ok(_) => None,
        };
        let (message, acker) = message.split();
        if let Some(reason) = reason {
            let letter = dead_letters::Letter {
                topic: self.topic.clone(),
                group: self.group.clone(),
                seq,
                deliveries,
                reason,
                hook: self.on_dead_letter.clone().zip(envelope.ok()),
            };
            // In the background: a slow hook must not hold up the rest of
            // this pull, whose ack timers run.
            let conn = self.link.conn.clone();
            tokio::spawn(async move {
                dead_letters::bury(&conn, letter, &message, &acker).await;
                nacks.forget();
            });
            return;
        }
        let Ok(envelope) = envelope else { return };
        let acker = NatsAcker::new(
            acker,
            slot,
            nacks,
            nacked,
            self.link.conn.config.ack_timeout,
            fetched,
        );
        let delivery = Delivery::new(envelope, deliveries, Box::new(acker)).received_at(fetched);
        let _ = self.tx.send(Ok(delivery));
    }
}
