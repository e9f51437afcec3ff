//! [`KafkaTransport`]: queues on consumer groups, broadcast on assigned
//! partitions, delayed nacks through the delay topic.
//!
//! | module | owns |
//! |---|---|
//! | `produce` | producing records in order and awaiting their acknowledgements |
//! | `tracker` | each partition's contiguous watermark of settled work |
//! | `reader` | a group member reading records within its in-flight bound; rebalances |
//! | `queue` | records → deliveries; dead-lettering what is not an envelope |
//! | `acker` | ack, nack (copies), strikes, dead letters |
//! | `delay` | the delay topic and its forwarder |
//! | `broadcast` | broadcast subscribers from the topics' ends, unpacking packed records |
//! | `dead_letters` | reading a topic's dead letters back |
//! | `depth` | queue depths, from the brokers and this instance's members |

mod acker;
mod broadcast;
mod dead_letters;
mod delay;
mod depth;
pub(crate) mod produce;
mod queue;
mod reader;
mod tracker;

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use multiagents_core::transport::{check_batch, check_subscribe};
use multiagents_core::{
    Capabilities, Envelope, QueueDepth, Result, SubscribeMode, SubscribeOptions, Subscription, Transport,
};
use rdkafka::producer::Producer;
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;
use crate::names::Names;
use crate::topics::Topics;
use produce::{Record, send_all};

/// What every part of one transport shares.
pub(crate) struct Shared {
    pub(crate) config: KafkaConfig,
    pub(crate) names: Names,
    pub(crate) producer: crate::producer::Producer,
    pub(crate) topics: Topics,
    pub(crate) closed: CancellationToken,
    /// Whether this transport's delay forwarder runs.
    pub(crate) forwarder: tokio::sync::Mutex<bool>,
    /// This instance's queue members, and clients asking about groups.
    pub(crate) depths: depth::Depths,
}

impl Shared {
    pub(crate) fn wire_max(&self) -> usize {
        self.config.wire_max()
    }

    /// Publishes `record` in place of the record `ticket` settles, then
    /// settles that one: the consumer is held (kept in its group) until
    /// then. `ordered`: `record`'s topic, when made, gets one partition.
    ///
    /// # Errors
    /// Making the topic or publishing; the original stays unsettled.
    pub(crate) async fn replace(
        &self,
        ticket: &reader::Ticket,
        record: Record,
        ordered: bool,
        op: &'static str,
    ) -> Result<()> {
        let consumer = ticket.hold();
        let result = async {
            if ordered {
                self.topics.ensure_ordered(&[&record.topic]).await?;
            } else {
                self.topics.ensure(&[&record.topic]).await?;
            }
            send_all(&self.producer, std::slice::from_ref(&record), op).await
        }
        .await;
        if result.is_ok() {
            ticket.settle();
        }
        drop(consumer);
        result
    }

    /// [`replace`](Self::replace), retried with backoff until it succeeds,
    /// the transport closes, or the record's partition moved to another
    /// consumer (which then has it); see [`while_held`](Self::while_held).
    /// For copies nobody waits on: a dropped delivery's, a dead letter, a
    /// delayed message due.
    pub(crate) async fn replace_until_done(
        &self,
        ticket: &reader::Ticket,
        record: Record,
        ordered: bool,
        op: &'static str,
    ) {
        let topic = record.topic.clone();
        self.while_held(ticket, "kafka: publishing a copy; retrying", &topic, || {
            self.replace(ticket, record.clone(), ordered, op)
        })
        .await;
    }

    /// Runs `attempt` until it succeeds (`true`), retrying with backoff
    /// (100 ms to 5 s, each failure logged as `what`), while `ticket`'s
    /// partition is still this consumer's and the transport open (`false`
    /// once either ends: the record's new owner redelivers it).
    pub(crate) async fn while_held<F, Fut>(
        &self,
        ticket: &reader::Ticket,
        what: &'static str,
        topic: &str,
        mut attempt: F,
    ) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let mut backoff = std::time::Duration::from_millis(100);
        while ticket.is_current() {
            match attempt().await {
                Ok(()) => return true,
                Err(e) => tracing::warn!(error = %e, topic = %topic, origin = %ticket.origin(), "{what}"),
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.closed.cancelled() => return false,
            }
            backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
        }
        false
    }

    fn check_open(&self, op: &'static str) -> Result<()> {
        if self.closed.is_cancelled() {
            return Err(crate::error::closed(op));
        }
        Ok(())
    }
}

/// The Kafka transport. Cheap to clone (clones share one producer).
///
/// * **Queue**: a consumer group per (topic, group), the envelope key as
///   the record key (so one key's messages keep their order on one
///   partition). Offsets are committed only up to each partition's
///   contiguous watermark; a nack or a dropped delivery republishes a copy
///   before settling the original (see `acker`). Unsettled work returns
///   when its partition moves: its consumer left, died (after
///   `session_timeout`) or a rebalance moved it. There is no per-message
///   ack timeout.
/// * **Broadcast**: every subscriber reads the topic's partitions from the
///   end, outside any group.
#[derive(Clone)]
pub struct KafkaTransport {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for KafkaTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTransport")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl KafkaTransport {
    /// Connects with `config`: checks it, creates the producer and admin
    /// client, and asks the cluster for its metadata (so a wrong address
    /// fails here, not at the first publish).
    ///
    /// # Errors
    /// `Config` for a bad setting or librdkafka option; `Unavailable` or
    /// `Timeout` when no broker answers within `request_timeout`.
    pub async fn with_config(config: KafkaConfig) -> Result<KafkaTransport> {
        config.validate()?;
        let producer = crate::producer::Producer::new(&config)?;
        let topics = Topics::new(&config)?;
        let probe = producer.get();
        let timeout = config.request_timeout;
        let brokers = config.brokers.clone();
        crate::blocking::off_runtime("kafka.connect", move || {
            probe.client().fetch_metadata(None, timeout).map_err(|e| {
                crate::error::kafka("kafka.connect", e)
                    .with_context("brokers", brokers)
                    .with_context(
                        "why",
                        "librdkafka's log says (multiagents -v, or RUST_LOG=librdkafka=warn)",
                    )
            })
        })
        .await?;
        Ok(KafkaTransport {
            shared: Arc::new(Shared {
                names: Names::new(&config.prefix),
                config,
                producer,
                topics,
                closed: CancellationToken::new(),
                forwarder: tokio::sync::Mutex::new(false),
                depths: depth::Depths::default(),
            }),
        })
    }

    /// The settings it runs with.
    pub fn config(&self) -> &KafkaConfig {
        &self.shared.config
    }

    /// Publishes `envelopes` to their queue topics, a record each.
    async fn send(&self, envelopes: &[Envelope], op: &'static str) -> Result<()> {
        let names = &self.shared.names;
        let mut records = Vec::with_capacity(envelopes.len());
        for e in envelopes {
            let wire = e.to_wire().map_err(|err| err.with_operation(op))?;
            records.push(Record::new(names.queue(&e.topic), e.key.clone(), wire.into()));
        }
        self.send_records(records, false, op).await
    }

    /// Publishes `records`, making their topics first where missing
    /// (`ordered`: with one partition).
    async fn send_records(&self, records: Vec<Record>, ordered: bool, op: &'static str) -> Result<()> {
        let topics: BTreeSet<&str> = records.iter().map(|r| r.topic.as_str()).collect();
        let topics: Vec<&str> = topics.into_iter().collect();
        if ordered {
            self.shared.topics.ensure_ordered(&topics).await?;
        } else {
            self.shared.topics.ensure(&topics).await?;
        }
        send_all(&self.shared.producer, &records, op).await
    }
}

#[async_trait]
impl Transport for KafkaTransport {
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::full("kafka", self.shared.config.max_payload);
        // Unsettled work returns when its partition moves, not after a
        // per-message timeout.
        c.ack_timeout = false;
        // A rebalance moves whole partitions, unsettled work included.
        c.moves_work_on_join = true;
        // A dead consumer's work moves after `session_timeout` from its
        // last heartbeat, sent every third of it (`client.rs`).
        c.group_liveness = true;
        c.group_hold = Some(self.shared.config.session_timeout * 2 / 3);
        c
    }

    async fn publish(&self, envelope: Envelope) -> Result<()> {
        const OP: &str = "kafka.publish";
        self.shared.check_open(OP)?;
        envelope
            .validate(self.shared.config.max_payload)
            .map_err(|e| e.with_operation(OP))?;
        self.send(std::slice::from_ref(&envelope), OP).await
    }

    async fn publish_batch(&self, envelopes: Vec<Envelope>) -> Result<()> {
        const OP: &str = "kafka.publish_batch";
        self.shared.check_open(OP)?;
        check_batch(OP, &envelopes, self.shared.config.max_payload)?;
        if envelopes.is_empty() {
            return Ok(());
        }
        self.send(&envelopes, OP).await
    }

    async fn subscribe(
        &self,
        topic: &str,
        mode: SubscribeMode,
        options: SubscribeOptions,
    ) -> Result<Subscription> {
        const OP: &str = "kafka.subscribe";
        check_subscribe(OP, topic, &mode, &options)?;
        self.shared.check_open(OP)?;
        match mode {
            SubscribeMode::Queue { group } => queue::subscribe(&self.shared, topic, &group, options).await,
            SubscribeMode::Broadcast => {
                let names = &self.shared.names;
                let topics = vec![names.queue(topic), names.broadcast(topic)];
                self.shared.topics.ensure(&[&topics[0]]).await?;
                self.shared.topics.ensure_ordered(&[&topics[1]]).await?;
                broadcast::subscribe(&self.shared, topics).await
            }
        }
    }

    async fn broadcast(&self, envelopes: Vec<Envelope>) -> Result<()> {
        const OP: &str = "kafka.broadcast";
        self.shared.check_open(OP)?;
        check_batch(OP, &envelopes, self.shared.config.max_payload)?;
        if envelopes.is_empty() {
            return Ok(());
        }
        // Packed: a burst of events is a few records, not one each; each
        // within `Envelope::PACK_MAX`, under what a broker takes by default
        // (an envelope larger than that goes alone, as it would unpacked).
        let names = &self.shared.names;
        let mut records = Vec::new();
        for (first, wire) in
            Envelope::pack(&envelopes, self.shared.wire_max()).map_err(|e| e.with_operation(OP))?
        {
            records.push(Record::new(
                names.broadcast(&first.topic),
                first.key.clone(),
                wire.into(),
            ));
        }
        self.send_records(records, true, OP).await
    }

    async fn queue_depth(&self, topic: &str, group: &str) -> Result<Option<QueueDepth>> {
        depth::queue_depth(&self.shared, topic, group).await
    }

    async fn close(&self) -> Result<()> {
        if self.shared.closed.is_cancelled() {
            return Ok(());
        }
        self.shared.closed.cancel();
        self.shared.depths.close();
        let producer = self.shared.producer.get();
        let timeout = self.shared.config.request_timeout;
        let flushed = tokio::task::spawn_blocking(move || producer.flush(timeout)).await;
        if let Ok(Err(e)) = flushed {
            return Err(crate::error::kafka("kafka.close", e));
        }
        Ok(())
    }
}
