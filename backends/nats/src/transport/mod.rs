//! [`NatsTransport`]: the [`Transport`] on NATS.
//!
//! * **Queue mode** — one JetStream stream per prefix (`<prefix>_queue`,
//!   file storage) holds every topic's messages on `<prefix>.q.<topic>`;
//!   each message carries its envelope id as `Nats-Msg-Id`, so a publish
//!   retried within the server's duplicate window is stored once. A group
//!   is a durable pull consumer filtered on its topic, created at the
//!   stream's start (it receives what is retained). A subscription pulls
//!   only as many messages as it has free `max_in_flight` slots, so nothing
//!   sits fetched but unseen while its ack timer runs (nats.rs#1420).
//! * **Ack** waits for the server's confirmation; **nack** is a JetStream
//!   `NAK` with the delay; **progress** is `+WPI` (the ack timer restarts).
//! * **Dead letters** — JetStream counts every delivery, nacks included;
//!   this backend counts *strikes* as the Redis one does (deliveries that
//!   ended without an ack or nack: a crash, a hang past the ack timeout, a
//!   dropped delivery). A nack records itself in the `<prefix>_nacks`
//!   bucket first, so a redelivery's strikes are its deliveries less its
//!   nacks. After [`max_deliveries`](crate::NatsConfig::max_deliveries)
//!   strikes, or at once for bytes that are not an envelope, the message is
//!   copied to `<prefix>.dlq.<topic>` ([`NatsTransport::dead_letters`]) and
//!   terminated.
//! * **Broadcast** — core NATS: a broadcast subscriber listens on
//!   `<prefix>.b.<topic>` (what [`Transport::broadcast`] sends) and on the
//!   queue subject itself, where core NATS also sees every queue publish.
//!   One broadcast call's envelopes of a topic go as one message while
//!   they fit ([`Envelope::pack`]). At most once; a subscriber that falls
//!   behind by 64 Ki messages loses messages (the client's slow-consumer
//!   bound).
//! * **Depth** ([`Transport::queue_depth`]) — the group's durable
//!   consumer's info, one request: `ready` is its `num_pending`, `in_flight`
//!   its `num_ack_pending`, `delayed` always 0: JetStream keeps a nacked
//!   message (with a delay or without) in ack-pending until it is delivered
//!   again, so nacked messages count in `in_flight`.
//! * **Trimming** — the stream keeps each message up to
//!   [`max_age`](crate::NatsConfig::max_age); every few seconds each topic
//!   is purged below the oldest message any of its groups has not acked.

mod acker;
mod dead_letters;
mod pending;
mod queue;
mod trim;

use std::fmt;

use async_nats::jetstream::kv;
use async_nats::jetstream::message::PublishMessage as Publish;
use async_nats::jetstream::stream::{self, Stream};
use async_trait::async_trait;
use futures_util::StreamExt;
use multiagents_core::transport::{Capabilities, QueueDepth, check_batch, check_subscribe};
use multiagents_core::{
    Envelope, Error, ErrorKind, Result, SubscribeMode, SubscribeOptions, Subscription, Transport,
};

pub use multiagents_core::transport::DeadLetter;

use crate::config::NatsConfig;
use crate::connection::Conn;
use crate::error;

/// Room left in the server's `max_payload` for the envelope around a payload.
const ENVELOPE_ROOM: usize = 64 * 1024;

/// The transport on NATS; see the [module docs](self). Cheap to clone.
#[derive(Clone)]
pub struct NatsTransport {
    conn: Conn,
    stream: Stream,
    nacks: kv::Store,
    max_payload: usize,
}

impl fmt::Debug for NatsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsTransport")
            .field("config", &self.conn.config)
            .finish_non_exhaustive()
    }
}

impl NatsTransport {
    /// Connects with the defaults of [`NatsConfig::new`], overridden by the
    /// options in `url`'s query ([`NatsConfig::from_url`]).
    ///
    /// # Errors
    /// As [`with_config`](Self::with_config).
    pub async fn connect(url: &str) -> Result<NatsTransport> {
        Self::with_config(NatsConfig::from_url(url)?).await
    }

    /// Connects with `config`, creating the queue stream and the nacks
    /// bucket when missing.
    ///
    /// # Errors
    /// `Config` for bad settings; `Unavailable` when the server cannot be
    /// reached or has no JetStream; `PermissionDenied` for refused
    /// credentials; `Unsupported` for a server older than 2.11. Messages
    /// show the URL with credentials masked.
    pub async fn with_config(config: NatsConfig) -> Result<NatsTransport> {
        let conn = Conn::open(config).await?;
        let stream = ensure_stream(&conn).await?;
        let nacks = ensure_nacks_bucket(&conn).await?;
        let max_payload = conn.max_payload(ENVELOPE_ROOM);
        trim::start(conn.clone(), stream.clone());
        Ok(NatsTransport {
            conn,
            stream,
            nacks,
            max_payload,
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &NatsConfig {
        &self.conn.config
    }

    /// Sends already-validated envelopes to their queue subjects.
    async fn publish_valid(&self, envelopes: &[Envelope], op: &'static str) -> Result<()> {
        let mut messages = Vec::with_capacity(envelopes.len());
        for e in envelopes {
            let wire = e.to_wire().map_err(|err| err.with_operation(op))?;
            let publish = Publish::build().payload(wire.into()).message_id(e.id.to_string());
            messages.push((self.conn.names.queue_subject(&e.topic), publish));
        }
        self.conn
            .publish_all(op, messages, |i| ("topic", envelopes[i].topic.clone()))
            .await
            .map(drop)
    }
}

#[async_trait]
impl Transport for NatsTransport {
    fn capabilities(&self) -> Capabilities {
        Capabilities::full("nats", self.max_payload).with_ack_wait(self.conn.config.ack_timeout)
    }

    async fn publish(&self, envelope: Envelope) -> Result<()> {
        const OP: &str = "nats.publish";
        envelope
            .validate(self.max_payload)
            .map_err(|e| e.with_operation(OP))?;
        self.publish_valid(std::slice::from_ref(&envelope), OP).await
    }

    async fn publish_batch(&self, envelopes: Vec<Envelope>) -> Result<()> {
        const OP: &str = "nats.publish_batch";
        check_batch(OP, &envelopes, self.max_payload)?;
        if envelopes.is_empty() {
            return Ok(());
        }
        self.publish_valid(&envelopes, OP).await
    }

    async fn subscribe(
        &self,
        topic: &str,
        mode: SubscribeMode,
        options: SubscribeOptions,
    ) -> Result<Subscription> {
        const OP: &str = "nats.subscribe";
        check_subscribe(OP, topic, &mode, &options)?;
        self.conn.check_open(OP)?;
        match mode {
            SubscribeMode::Queue { group } => {
                let link = queue::Link {
                    conn: self.conn.clone(),
                    stream: self.stream.clone(),
                    nacks: self.nacks.clone(),
                    max_payload: self.max_payload,
                };
                queue::subscribe(link, topic, &group, options).await
            }
            SubscribeMode::Broadcast => self.subscribe_broadcast(topic).await,
        }
    }

    async fn broadcast(&self, envelopes: Vec<Envelope>) -> Result<()> {
        const OP: &str = "nats.broadcast";
        check_batch(OP, &envelopes, self.max_payload)?;
        self.conn.check_open(OP)?;
        // Packed: a burst of events is a few messages, not one each; within
        // the server's limit, as one envelope is.
        let wire_max = self.max_payload.saturating_add(ENVELOPE_ROOM);
        for (first, wire) in Envelope::pack(&envelopes, wire_max).map_err(|e| e.with_operation(OP))? {
            self.conn
                .client
                .publish(self.conn.names.broadcast_subject(&first.topic), wire.into())
                .await
                .map_err(|err| error::core_publish(OP, err).with_context("topic", &first.topic))?;
        }
        Ok(())
    }

    /// The group's durable consumer's info (one request): `ready` =
    /// `num_pending`, `in_flight` = `num_ack_pending`, `delayed` = 0
    /// (JetStream keeps nacked messages, delayed or not, in ack-pending:
    /// they count in `in_flight`). `None` when the group has no consumer on
    /// the topic.
    async fn queue_depth(&self, topic: &str, group: &str) -> Result<Option<QueueDepth>> {
        self.depth(topic, group).await
    }

    /// Stops the subscriptions' readers and the trimmer; flushes.
    async fn close(&self) -> Result<()> {
        self.conn.close().await
    }
}

impl NatsTransport {
    async fn subscribe_broadcast(&self, topic: &str) -> Result<Subscription> {
        const OP: &str = "nats.subscribe";
        let names = &self.conn.names;
        let mut subs = Vec::with_capacity(2);
        for subject in [names.broadcast_subject(topic), names.queue_subject(topic)] {
            subs.push(
                self.conn
                    .client
                    .subscribe(subject)
                    .await
                    .map_err(|e| error::other(OP, e).with_context("topic", topic))?,
            );
        }
        // Messages published after this returns must arrive: the server
        // has the subscriptions once a round trip after them completes.
        self.conn
            .client
            .flush()
            .await
            .map_err(|e| error::other(OP, e).with_context("topic", topic))?;
        let wire_max = self.max_payload.saturating_add(ENVELOPE_ROOM);
        let closed = self.conn.closed.clone();
        let merged = futures_util::stream::select_all(subs)
            .flat_map(move |m| {
                // One envelope, or several packed by `broadcast`.
                let envelopes = match Envelope::batch_from_wire(&m.payload, wire_max) {
                    Ok(envelopes) => envelopes,
                    Err(e) => {
                        tracing::warn!(error = %e, subject = %m.subject, "dropping a broadcast that is not an envelope");
                        Vec::new()
                    }
                };
                futures_util::stream::iter(
                    envelopes
                        .into_iter()
                        .map(|e| Ok(multiagents_core::Delivery::unacked(e))),
                )
            })
            .take_until(async move { closed.cancelled().await });
        Ok(Subscription::new(merged))
    }
}

/// The queue stream, created (or its limits updated) at connect.
async fn ensure_stream(conn: &Conn) -> Result<Stream> {
    const OP: &str = "nats.connect";
    let config = stream::Config {
        name: conn.names.queue_stream(),
        subjects: conn.names.queue_subjects(),
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: conn.config.max_age,
        num_replicas: conn.config.replicas,
        allow_direct: true,
        ..Default::default()
    };
    conn.js
        .create_or_update_stream(config)
        .await
        .map_err(|e| error::other(OP, e).with_context("stream", conn.names.queue_stream()))?;
    conn.js
        .get_stream(conn.names.queue_stream())
        .await
        .map_err(|e| error::other(OP, e).with_context("stream", conn.names.queue_stream()))
}

/// The bucket of nack counts (see the module docs on dead letters).
async fn ensure_nacks_bucket(conn: &Conn) -> Result<kv::Store> {
    let config = kv::Config {
        bucket: conn.names.nacks_bucket(),
        history: 1,
        max_age: conn.config.max_age,
        storage: stream::StorageType::File,
        num_replicas: conn.config.replicas,
        ..Default::default()
    };
    conn.js.create_or_update_key_value(config).await.map_err(|e| {
        Error::new(
            ErrorKind::Unavailable,
            format!("cannot create the NATS bucket {}: {e}", conn.names.nacks_bucket()),
        )
        .with_operation("nats.connect")
        .with_source(e)
    })
}
