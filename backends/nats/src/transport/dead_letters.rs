//! Dead letters: moving a message that struck out (or is not an envelope)
//! to `<prefix>.dlq.<topic>`, and reading them back.

use async_nats::HeaderMap;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::message::Acker as JsAcker;
use async_nats::jetstream::message::PublishMessage as Publish;
use async_nats::jetstream::stream::DirectGetErrorKind;
use multiagents_core::transport::{DeadLetter, DeadLetterHook};
use multiagents_core::{Envelope, Result, validate};

use super::NatsTransport;
use crate::connection::Conn;
use crate::error;

const GROUP: &str = "Multiagents-Group";
const ORIGINAL: &str = "Multiagents-Original-Seq";
const DELIVERIES: &str = "Multiagents-Deliveries";
const REASON: &str = "Multiagents-Reason";

/// Why a message was dead-lettered.
#[derive(Debug, Clone, Copy)]
pub(super) enum Reason {
    /// `max_deliveries` strikes.
    MaxDeliveries,
    /// Its bytes are not an envelope.
    NotAnEnvelope,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::MaxDeliveries => "max_deliveries",
            Reason::NotAnEnvelope => "not_an_envelope",
        }
    }
}

/// What is known of a message being dead-lettered.
pub(super) struct Letter {
    pub(super) topic: String,
    pub(super) group: String,
    pub(super) seq: u64,
    pub(super) deliveries: u32,
    pub(super) reason: Reason,
    /// The subscription's hook and the envelope to tell it of (none for
    /// bytes that are not an envelope).
    pub(super) hook: Option<(DeadLetterHook, Envelope)>,
}

/// Copies the message to the topic's dead letters, tells the
/// subscription's hook, then terminates it for the group. A failed copy or
/// hook leaves the message alone: it comes back after the ack timeout and
/// is buried then (the hook called again; the copy is deduplicated by id
/// within the stream's duplicate window, 2 minutes by default).
pub(super) async fn bury(conn: &Conn, letter: Letter, message: &async_nats::Message, acker: &JsAcker) {
    const OP: &str = "nats.dead_letter";
    let mut headers = HeaderMap::new();
    headers.insert(GROUP, letter.group.as_str());
    headers.insert(ORIGINAL, letter.seq.to_string().as_str());
    headers.insert(DELIVERIES, letter.deliveries.to_string().as_str());
    headers.insert(REASON, letter.reason.as_str());
    let publish = Publish::build()
        .payload(message.payload.clone())
        .headers(headers)
        .message_id(format!("dlq-{}-{}", letter.group, letter.seq));
    let copied = match conn
        .js
        .send_publish(conn.names.dead_letter_subject(&letter.topic), publish)
        .await
    {
        Ok(ack) => ack.await.map(drop).map_err(|e| error::js_publish(OP, e)),
        Err(e) => Err(error::js_publish(OP, e)),
    };
    match copied {
        Ok(()) => {
            if let Some((hook, envelope)) = letter.hook
                && let Err(e) = hook.call(envelope, letter.deliveries).await
            {
                tracing::warn!(error = %e, topic = %letter.topic, seq = letter.seq,
                    "the dead letter's hook failed; the message returns after the ack timeout");
                return;
            }
            tracing::warn!(
                topic = %letter.topic,
                group = %letter.group,
                seq = letter.seq,
                deliveries = letter.deliveries,
                reason = letter.reason.as_str(),
                "message dead-lettered"
            );
            if let Err(e) = acker.ack_with(AckKind::Term).await {
                tracing::warn!(error = %e, "TERM of a dead-lettered message failed; it may be buried twice");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, topic = %letter.topic, seq = letter.seq, "cannot dead-letter a message; it returns after the ack timeout")
        }
    }
}

impl NatsTransport {
    /// Up to `count` dead letters of `topic`, oldest first.
    ///
    /// # Errors
    /// `InvalidInput` for a bad topic; `Unavailable` when the server cannot
    /// be reached.
    pub async fn dead_letters(&self, topic: &str, count: usize) -> Result<Vec<DeadLetter>> {
        const OP: &str = "nats.dead_letters";
        validate::topic(topic).map_err(|e| e.with_operation(OP))?;
        let subject = self.conn.names.dead_letter_subject(topic);
        let wire_max = self.max_payload.saturating_add(super::ENVELOPE_ROOM);
        let mut out = Vec::new();
        let mut next = 1;
        while out.len() < count.max(1) {
            let m = match self
                .stream
                .direct_get_next_for_subject(subject.as_str(), Some(next))
                .await
            {
                Ok(m) => m,
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => break,
                Err(e) => return Err(error::other(OP, e).with_context("topic", topic)),
            };
            next = m.sequence + 1;
            let text = |name: &str| {
                m.headers
                    .get(name)
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default()
            };
            out.push(DeadLetter::new(
                m.sequence.to_string(),
                text(GROUP),
                text(ORIGINAL),
                text(DELIVERIES).parse().unwrap_or(0),
                text(REASON),
                Envelope::from_wire(&m.payload, wire_max).ok(),
            ));
        }
        Ok(out)
    }
}
