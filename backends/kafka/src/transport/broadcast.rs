//! Broadcast subscriptions: a consumer outside any group, assigned every
//! partition of the topic's queue and broadcast-only Kafka topics at their
//! current ends, so it receives what is published after it subscribed, and
//! nothing committed ever names it. At most once: nothing is acked. A
//! record is one envelope, or several packed by `broadcast`
//! ([`Envelope::pack`]).

use std::sync::Arc;

use multiagents_core::{Delivery, Envelope, Result, Subscription};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::Shared;

/// Subscribes to `topics` (Kafka names) from their ends.
pub(super) async fn subscribe(shared: &Arc<Shared>, topics: Vec<String>) -> Result<Subscription> {
    const OP: &str = "kafka.subscribe";
    let consumer: StreamConsumer = crate::client::plain_consumer(&shared.config)?;
    let consumer = Arc::new(crate::closing::Closing::new(consumer));
    let timeout = shared.config.request_timeout;
    let c = consumer.clone();
    let assignment = crate::blocking::off_runtime(OP, move || {
        let mut list = TopicPartitionList::new();
        for topic in &topics {
            for (p, _, high) in crate::blocking::watermarks(&**c, topic, timeout, OP)? {
                list.add_partition_offset(topic, p, Offset::Offset(high))
                    .map_err(|e| crate::error::kafka(OP, e))?;
            }
        }
        Ok(list)
    })
    .await?;
    consumer
        .assign(&assignment)
        .map_err(|e| crate::error::kafka(OP, e))?;
    let (tx, rx) = mpsc::channel(1024);
    let wire_max = shared.wire_max();
    let closed = shared.closed.clone();
    tokio::spawn(async move {
        'read: loop {
            let envelopes = tokio::select! {
                m = consumer.recv() => match m {
                    Ok(m) => Envelope::batch_from_wire(m.payload().unwrap_or_default(), wire_max),
                    Err(e) => {
                        tracing::warn!(error = %e, "kafka: broadcast consumer");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = tx.closed() => break,
                () = closed.cancelled() => break,
            };
            match envelopes {
                Ok(envelopes) => {
                    for e in envelopes {
                        if tx.send(Ok(Delivery::unacked(e))).await.is_err() {
                            break 'read;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "kafka: a broadcast record that is not an envelope; skipped")
                }
            }
        }
        // Closing a consumer without a group does not wait on a broker, but
        // keep it off the async threads anyway.
        tokio::task::spawn_blocking(move || drop(consumer));
    });
    Ok(Subscription::new(futures_util::stream::unfold(
        rx,
        |mut rx| async move {
            let next = rx.recv().await?;
            Some((next, rx))
        },
    )))
}
