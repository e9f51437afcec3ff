//! Publishing many JetStream messages without deadlocking the client.
//!
//! async-nats holds one of its in-flight permits per publish until its
//! acknowledgement is awaited, and makes further publishes wait for a free
//! one. Callers that each send a batch before awaiting any acknowledgement
//! would then wait on each other forever once together they hold every
//! permit. [`Conn::publish_all`] sends in windows of [`ACK_WINDOW`] and
//! takes the window's share of this connection's [`MAX_UNACKED`] budget
//! all at once before sending it, so no caller holds part of what it needs
//! while waiting for the rest; the client's own limit is set above that
//! budget, so it never waits.

use async_nats::jetstream::context::PublishError;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use multiagents_core::{Error, ErrorKind, Result};

use crate::connection::Conn;
use crate::error;

/// Most publishes one call sends before it awaits their acknowledgements.
pub(crate) const ACK_WINDOW: usize = 1024;
/// Most unacknowledged publishes of one connection, across callers.
pub(crate) const MAX_UNACKED: usize = 16 * ACK_WINDOW;
/// The client's own in-flight limit: above [`MAX_UNACKED`], never reached.
pub(crate) const CLIENT_INFLIGHT: usize = 2 * MAX_UNACKED;

impl Conn {
    /// Publishes `messages` (subject, message) in order and returns their
    /// acknowledgements, in order; `context(i)` names message `i` in errors.
    pub(crate) async fn publish_all(
        &self,
        op: &'static str,
        messages: Vec<(String, PublishMessage)>,
        context: impl Fn(usize) -> (&'static str, String),
    ) -> Result<Vec<PublishAck>> {
        self.check_open(op)?;
        let mut acks = Vec::with_capacity(messages.len());
        let mut messages = messages.into_iter().enumerate().peekable();
        while messages.peek().is_some() {
            let window: Vec<_> = messages.by_ref().take(ACK_WINDOW).collect();
            let _budget = self
                .unacked
                .acquire_many(window.len() as u32)
                .await
                .map_err(|_| {
                    Error::new(ErrorKind::Closed, "the NATS backend was closed").with_operation(op)
                })?;
            let mut pending = Vec::with_capacity(window.len());
            for (i, (subject, message)) in window {
                let ack = self.js.send_publish(subject, message).await;
                pending.push((i, ack));
            }
            for (i, ack) in pending {
                let acked = match ack {
                    Ok(future) => future.await,
                    Err(e) => Err(e),
                };
                acks.push(acked.map_err(|e: PublishError| {
                    let (key, value) = context(i);
                    error::js_publish(op, e).with_context(key, value)
                })?);
            }
        }
        Ok(acks)
    }
}
