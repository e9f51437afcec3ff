//! Queue subscriptions: a group member's records ([`reader`](super::reader))
//! turned into [`Delivery`]s settled by [`KafkaAcker`]. A record that is
//! not an envelope goes to the topic's dead letters at once.

use std::sync::Arc;

use multiagents_core::transport::DeadLetterHook;
use multiagents_core::{Delivery, Envelope, Result, SubscribeOptions, Subscription};

use super::Shared;
use super::acker::KafkaAcker;
use super::produce::Record;
use super::reader::{self, Received};
use crate::names;

/// Joins `group` on `topic`.
pub(super) async fn subscribe(
    shared: &Arc<Shared>,
    topic: &str,
    group: &str,
    options: SubscribeOptions,
) -> Result<Subscription> {
    let max_in_flight = options.max_in_flight;
    let kafka_topic = shared.names.queue(topic);
    shared.topics.ensure(&[&kafka_topic]).await?;
    super::delay::ensure_forwarder(shared).await?;
    let group_id = shared.names.group(topic, group);
    let reading = reader::start(
        &shared.config,
        &group_id,
        &[&kafka_topic],
        max_in_flight,
        shared.closed.clone(),
    )?;
    shared.depths.register(&group_id, &reading.tracker);
    // Return once a member of the group (a rebalance takes a few seconds):
    // a consumer that is still joining when the group's last member leaves
    // waits for another rebalance (and on Tansu, never gets one).
    let mut joined = reading.joined;
    let wait = shared.config.session_timeout + shared.config.request_timeout;
    if tokio::time::timeout(wait, joined.wait_for(|j| *j)).await.is_err() {
        tracing::warn!(group = %group_id, ?wait, "kafka: the consumer has not joined its group yet; it keeps trying");
    }
    let rx = reading.records;
    let ctx = Arc::new(Ctx {
        shared: shared.clone(),
        topic: topic.to_string(),
        group: group.to_string(),
        on_dead_letter: options.on_dead_letter,
    });
    let deliveries = futures_util::stream::unfold((rx, ctx), |(mut rx, ctx)| async move {
        loop {
            let next = match rx.recv().await? {
                Ok(r) => hand_out(&ctx, r),
                Err(e) => Some(Err(e)),
            };
            if let Some(next) = next {
                return Some((next, (rx, ctx)));
            }
        }
    });
    Ok(Subscription::new(deliveries))
}

/// What every delivery of one subscription shares.
struct Ctx {
    shared: Arc<Shared>,
    topic: String,
    group: String,
    on_dead_letter: Option<DeadLetterHook>,
}

fn count(r: &Received, name: &str) -> u32 {
    r.header(name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The delivery of `r`, or `None` when it was not an envelope (it is
/// dead-lettered).
fn hand_out(ctx: &Ctx, r: Received) -> Option<Result<Delivery>> {
    let (shared, topic, group) = (&ctx.shared, ctx.topic.as_str(), ctx.group.as_str());
    let deliveries = count(&r, names::DELIVERIES).saturating_add(1);
    let strikes = count(&r, names::STRIKES);
    match Envelope::from_wire(&r.value, shared.wire_max()) {
        Ok(envelope) => {
            let acker = KafkaAcker {
                shared: shared.clone(),
                ticket: Arc::new(r.ticket),
                kafka_topic: r.topic,
                topic: topic.to_string(),
                group: group.to_string(),
                key: r.key,
                value: r.value,
                deliveries,
                strikes,
                on_dead_letter: ctx.on_dead_letter.clone(),
            };
            Some(Ok(Delivery::new(envelope, deliveries, Box::new(acker))))
        }
        Err(e) => {
            let origin = r.ticket.origin();
            tracing::warn!(error = %e, %origin, "kafka: a queue record that is not an envelope; dead-lettered");
            let record = Record::new(shared.names.dead_letters(topic), r.key.clone(), r.value.clone())
                .with_header(names::REASON, "not_an_envelope")
                .with_header(names::GROUP, group)
                .with_header(names::ORIGIN, origin)
                .with_header(names::DELIVERIES, deliveries);
            let shared = shared.clone();
            tokio::spawn(async move {
                shared
                    .replace_until_done(&r.ticket, record, true, "kafka.dead_letter")
                    .await;
            });
            None
        }
    }
}
