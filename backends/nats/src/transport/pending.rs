//! [`NatsTransport::pending`]: how many deliveries a group holds unsettled.

use async_nats::jetstream::context::ConsumerInfoErrorKind;
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
        validate::topic(topic).map_err(|e| e.with_operation(OP))?;
        validate::group(group).map_err(|e| e.with_operation(OP).with_context("topic", topic))?;
        self.conn.check_open(OP)?;
        let name = self.conn.names.consumer(topic, group);
        match self.stream.consumer_info(&name).await {
            Ok(info) => Ok(info.num_ack_pending as u64),
            Err(e) => {
                let e = match e.kind() {
                    ConsumerInfoErrorKind::NotFound | ConsumerInfoErrorKind::StreamNotFound => Error::new(
                        ErrorKind::NotFound,
                        format!("group {group} has no consumer on topic {topic}"),
                    )
                    .with_operation(OP)
                    .with_source(e),
                    _ => error::other(OP, e),
                };
                Err(e.with_context("topic", topic).with_context("group", group))
            }
        }
    }
}
