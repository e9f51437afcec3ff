//! Transport behaviours: each is `pub async fn name<T: Transport + ?Sized>(t: &T, s: &Settings)`,
//! panics on a violation and skips (visibly) what the backend's
//! [`Capabilities`](crate::Capabilities) say it lacks.
//!
//! | behaviour | checks | needs |
//! |---|---|---|
//! | [`queue_round_trip`] | id, topic, key, headers (in order), payload with `0x00`/`0xff`, created-at and attempt arrive unchanged; delivery count 1; nothing after ack | queue |
//! | [`empty_payload_round_trip`] | an empty payload arrives as empty | queue |
//! | [`large_payload_round_trip`] | a 1 MiB payload arrives intact | queue, `max_payload` ≥ 1 MiB |
//! | [`per_key_order`] | a lone consumer sees each key's messages in publish order (publish and publish_batch) | queue, ordered_per_key |
//! | [`groups_each_receive_every_message`] | two groups on a topic each get every message once | queue |
//! | [`topics_are_isolated`] | one group name on `t`, `t.sub`, `t-x` gets only its own topic's messages | queue |
//! | [`competing_consumers_share_work`] | three consumers of a group split the work; every message once | queue |
//! | [`nack_redelivers_after_delay`] | a nacked message returns no earlier than the delay, delivery count up | queue, nack_delay |
//! | [`nack_zero_redelivers_promptly`] | `nack(0)` returns the message within `patience` | queue |
//! | [`settle_twice_is_already_settled`] | ack→ack, ack→nack, nack→ack fail with `AlreadySettled` | queue |
//! | [`dropped_delivery_is_redelivered`] | a delivery dropped unsettled returns within `redelivery` | queue |
//! | [`dropped_consumer_work_is_redelivered`] | a consumer dropped with unsettled work: it goes to another consumer within `redelivery`, each once (duplicates allowed with `moves_work_on_join`) | queue |
//! | [`ack_timeout_redelivers`] | a delivery held unsettled returns after the ack timeout | queue, ack_timeout |
//! | [`progress_keeps_a_delivery`] | a delivery kept in progress is not redelivered; once its holder goes silent it is | queue, ack_timeout, ack_wait |
//! | [`backpressure_bound`] | `max_in_flight = 5`: 5 arrive, a 6th only after an ack; nothing lost | queue |
//! | [`broadcast_fan_out`] | three broadcast subscribers each get every message once | broadcast |
//! | [`broadcast_only_reaches_broadcast_subscribers`] | `broadcast()` reaches listeners, no queue group, retains nothing | queue, broadcast, broadcast_only |
//! | [`broadcast_batch_keeps_each_topics_order`] | a ~1 MiB `broadcast()` in runs of two topics: each listener gets its own, whole and in order | broadcast, broadcast_only |
//! | [`batch_of_10k_arrives_exactly_once`] | a 10 000-envelope `publish_batch` arrives exactly once when acked | queue |
//! | [`batch_with_invalid_envelope_publishes_nothing`] | one bad envelope fails the batch and nothing is published | queue |
//! | [`publish_rejects_bad_input`] | bad topic or key → `InvalidInput`, oversized payload → `TooLarge`, naming the value | — |
//! | [`struck_out_messages_tell_the_hook_until_it_succeeds`] (not in the suite: run it on a transport with `max_deliveries = 1`) | a dead letter's hook is told before the original is settled; a failed hook is told again; the subscriber never sees the message again | queue, dead letters |
//! | [`subscribe_rejects_bad_input`] | bad topic or group, `max_in_flight` 0 → `InvalidInput`; a mode the backend lacks → `Unsupported` | — |

mod broadcast;
mod dead_letters;
mod delivery;
mod input;
mod messages;

pub use broadcast::{
    broadcast_batch_keeps_each_topics_order, broadcast_fan_out, broadcast_only_reaches_broadcast_subscribers,
};
pub use dead_letters::struck_out_messages_tell_the_hook_until_it_succeeds;
pub use delivery::{
    ack_timeout_redelivers, backpressure_bound, delivery_dropped_outside_a_runtime_is_redelivered,
    dropped_consumer_work_is_redelivered, dropped_delivery_is_redelivered, nack_redelivers_after_delay,
    nack_zero_redelivers_promptly, progress_keeps_a_delivery, queue_depth_counts_waiting_and_unsettled,
    settle_twice_is_already_settled,
};
pub use input::{
    batch_with_invalid_envelope_publishes_nothing, publish_rejects_bad_input, subscribe_rejects_bad_input,
};
pub use messages::{
    batch_of_10k_arrives_exactly_once, competing_consumers_share_work, empty_payload_round_trip,
    groups_each_receive_every_message, large_payload_round_trip, per_key_order, queue_round_trip,
    topics_are_isolated,
};

use super::Settings;
use super::util::must;
use crate::envelope::Envelope;
use crate::transport::{SubscribeMode, SubscribeOptions, Subscription, Transport};

/// Subscribes in queue mode to `topic` / `group` with `max_in_flight`.
async fn queue_sub<T: Transport + ?Sized>(
    t: &T,
    s: &Settings,
    topic: &str,
    group: &str,
    max_in_flight: usize,
) -> Subscription {
    must(
        s,
        format_args!("subscribe to {topic:?} in group {group:?}"),
        t.subscribe(
            topic,
            SubscribeMode::queue(group),
            SubscribeOptions::max_in_flight(max_in_flight),
        ),
    )
    .await
}

/// `n` envelopes on `topic`, payload = index as 4 big-endian bytes, keys
/// cycling over `keys` distinct values.
fn numbered(topic: &str, n: u32, keys: u32) -> Vec<Envelope> {
    (0..n)
        .map(|i| Envelope::new(topic, format!("k{}", i % keys), i.to_be_bytes().to_vec()))
        .collect()
}

/// The index [`numbered`] put in a payload.
fn number(payload: &[u8]) -> u32 {
    let bytes: [u8; 4] = payload
        .try_into()
        .unwrap_or_else(|_| panic!("payload should be a 4-byte index, got {} bytes", payload.len()));
    u32::from_be_bytes(bytes)
}

/// Asserts that a received envelope equals the sent one, field by field.
fn assert_same_envelope(got: &Envelope, sent: &Envelope) {
    assert_eq!(got.id, sent.id, "id changed in transit");
    assert_eq!(got.topic, sent.topic, "topic changed in transit");
    assert_eq!(got.key, sent.key, "key changed in transit");
    assert_eq!(
        got.headers, sent.headers,
        "headers changed in transit (order matters)"
    );
    super::util::assert_bytes_eq(&got.payload, &sent.payload, "payload changed in transit");
    assert_eq!(
        got.created_at_ms, sent.created_at_ms,
        "created_at_ms changed in transit"
    );
    assert_eq!(got.attempt, sent.attempt, "attempt changed in transit");
    assert_eq!(got, sent, "envelope changed in transit");
}
