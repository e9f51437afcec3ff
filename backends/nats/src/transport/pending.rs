//! A group's counts, from its durable consumer's info:
//! [`NatsTransport::pending`] and [`Transport::queue_depth`](multiagents_core::Transport::queue_depth).

use async_nats::jetstream::consumer;
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use multiagents_core::transport::QueueDepth;
use multiagents_core::{Error, ErrorKind, Result, validate};

use super::NatsTransport;
use crate::error;

impl NatsTransport {
    /// How many messages of `topic` were delivered to `group` and not yet
    /// acknowledged: its durable consumer's `num_ack_pending` (what Redis's
    /// `XPENDING` counts). Messages nacked with a delay count until they
    /// are delivered again; messages waiting for their first delivery do
    /// not count.
    ///
    /// # Errors
    /// `InvalidInput` for a bad topic or group; `NotFound` when `group` has
    /// no consumer on `topic` (it never subscribed, or the stream was
    /// deleted); `Closed` after [`close`](multiagents_core::Transport::close);
    /// `Unavailable` or `Timeout` when the server cannot answer.
    pub async fn pending(&self, topic: &str, group: &str) -> Result<u64> {
        const OP: &str = "nats.pending";
        match self.consumer_info(OP, topic, group).await? {
            Some(info) => Ok(info.num_ack_pending as u64),
            None => Err(Error::new(
                ErrorKind::NotFound,
                format!("group {group} has no consumer on topic {topic}"),
            )
            .with_operation(OP)
            .with_context("topic", topic)
            .with_context("group", group)),
        }
    }

    /// [`Transport::queue_depth`](multiagents_core::Transport::queue_depth):
    /// `num_pending` waits, `num_ack_pending` is in flight, nothing is
    /// `delayed` (JetStream keeps a nacked message, with a delay or not, in
    /// ack-pending until it is delivered again). `None` when `group` has no
    /// consumer on `topic`.
    pub(super) async fn depth(&self, topic: &str, group: &str) -> Result<Option<QueueDepth>> {
        const OP: &str = "nats.queue_depth";
        Ok(self.consumer_info(OP, topic, group).await?.map(|info| {
            QueueDepth::new(
                usize::try_from(info.num_pending).unwrap_or(usize::MAX),
                info.num_ack_pending,
                0,
            )
        }))
    }

    /// The info of `group`'s durable consumer on `topic`; `None` when there
    /// is none (it never subscribed, or the stream was deleted).
    async fn consumer_info(
        &self,
        op: &'static str,
        topic: &str,
        group: &str,
    ) -> Result<Option<consumer::Info>> {
        validate::topic(topic).map_err(|e| e.with_operation(op))?;
        validate::group(group).map_err(|e| e.with_operation(op).with_context("topic", topic))?;
        self.conn.check_open(op)?;
        let name = self.conn.names.consumer(topic, group);
        match self.stream.consumer_info(&name).await {
            Ok(info) => Ok(Some(info)),
            Err(e) => match e.kind() {
                ConsumerInfoErrorKind::NotFound | ConsumerInfoErrorKind::StreamNotFound => Ok(None),
                _ => Err(error::other(op, e)
                    .with_context("topic", topic)
                    .with_context("group", group)),
            },
        }
    }
}
