//! Moving entries to a topic's dead-letter stream from the reader: one
//! that is not an envelope (at once), and one that struck out when its
//! subscription has a dead-letter hook (`claim.lua` leaves it pending with
//! this consumer; the hook runs first, then it moves).
//!
//! Without a hook, `claim.lua` moves struck-out entries itself.

use multiagents_core::transport::DeadLetterHook;
use multiagents_core::{Envelope, Error, ErrorKind};

use super::queue::Group;
use super::reply::{Counted, field};

/// An entry that is not an envelope goes to the dead-letter stream; the
/// error says so (the subscriber gets it).
pub(super) async fn bury_unreadable(
    g: &Group,
    id: String,
    fields: Vec<(String, Vec<u8>)>,
    e: Error,
) -> Error {
    let raw = field(&fields, "e").map(<[u8]>::to_vec).unwrap_or_default();
    let reason = format!("not an envelope: {}", e.message());
    let moved = move_entry(g, &id, raw, 1, &reason).await;
    tracing::error!(error = %e, stream = %g.stream, id = %id, "a stream entry is not an envelope; dead-lettered");
    let mut err = Error::new(
        ErrorKind::Codec,
        format!(
            "stream entry {id} of {:?} is not an envelope; moved to {}",
            g.topic, g.dlq
        ),
    )
    .with_operation("redis.subscribe")
    .with_context("topic", &g.topic)
    .with_context("id", &id)
    .with_source(e);
    if let Err(m) = moved {
        err = err.with_context("dead_letter_failed", m);
    }
    err
}

/// An entry that struck out: the hook is told, then it moves. A failed hook
/// leaves it pending with this consumer: it is claimed again after the ack
/// timeout, strikes out again, and the hook runs again.
pub(super) async fn bury_struck(g: &Group, hook: &DeadLetterHook, entry: Counted) {
    let ((id, fields), deliveries, strikes) = entry;
    let raw = field(&fields, "e").map(<[u8]>::to_vec).unwrap_or_default();
    if let Ok(envelope) = Envelope::from_wire(&raw, g.wire_max)
        && let Err(e) = hook.call(envelope, deliveries).await
    {
        tracing::warn!(error = %e, stream = %g.stream, id = %id,
            "the dead letter's hook failed; the entry comes back after the ack timeout");
        return;
    }
    let reason = format!("dropped unsettled or timed out {strikes} times");
    match move_entry(g, &id, raw, deliveries, &reason).await {
        Ok(()) => {
            tracing::warn!(topic = %g.topic, group = %g.group, id = %id, deliveries, dlq = %g.dlq,
                "message dead-lettered after too many unsettled deliveries");
            metrics::counter!("multiagents_redis_dead_letters_total", "topic" => g.topic.clone())
                .increment(1);
        }
        Err(e) => tracing::warn!(error = %e, stream = %g.stream, id = %id,
            "cannot dead-letter an entry; it comes back after the ack timeout"),
    }
}

/// `XADD` to the dead letters, `XACK` and the strikes record's `HDEL`, in
/// one round trip.
async fn move_entry(
    g: &Group,
    id: &str,
    raw: Vec<u8>,
    deliveries: u32,
    reason: &str,
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    pipe.cmd("XADD")
        .arg(&g.dlq)
        .arg("*")
        .arg("e")
        .arg(raw)
        .arg("group")
        .arg(&g.group)
        .arg("id")
        .arg(id)
        .arg("deliveries")
        .arg(deliveries)
        .arg("reason")
        .arg(reason)
        .ignore();
    pipe.cmd("XACK").arg(&g.stream).arg(&g.group).arg(id).ignore();
    pipe.cmd("HDEL").arg(&g.strikes).arg(id).ignore();
    pipe.query_async(&mut g.conn.cmd()).await
}
