//! [`DeadLetter`]: what a server backend reports of a message it gave up on.

use crate::envelope::Envelope;

/// A message a backend moved to its topic's dead letters: after
/// `max_deliveries` strikes (deliveries that ended without an ack or nack),
/// or at once when its bytes are not an envelope. Backends list them with
/// their own `dead_letters(topic, count)`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The dead letter's own id in the backend (a stream entry id or
    /// sequence, as text).
    pub id: String,
    /// The group that gave up on it.
    pub group: String,
    /// The original message's id in the backend.
    pub original_id: String,
    /// How many times it had been delivered to that group.
    pub deliveries: u32,
    /// Why: `max_deliveries` or `not_an_envelope`.
    pub reason: String,
    /// The message, when it could be decoded.
    pub envelope: Option<Envelope>,
}

impl DeadLetter {
    /// A dead letter as a backend read it back.
    pub fn new(
        id: impl Into<String>,
        group: impl Into<String>,
        original_id: impl Into<String>,
        deliveries: u32,
        reason: impl Into<String>,
        envelope: Option<Envelope>,
    ) -> DeadLetter {
        DeadLetter {
            id: id.into(),
            group: group.into(),
            original_id: original_id.into(),
            deliveries,
            reason: reason.into(),
            envelope,
        }
    }
}
