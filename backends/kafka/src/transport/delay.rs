//! `nack(delay)` on Kafka: the delay topic and its forwarder.
//!
//! A message nacked with a delay is copied to `<prefix>.delay` with the
//! time it is due and the topic it returns to (headers), and the original
//! is settled. Every transport that consumes queues also runs a member of
//! the forwarder group on the delay topic: it holds each record until due
//! (up to `max_delayed` at once; the rest wait in the topic, uncommitted),
//! then publishes it back to its topic and settles it. A forwarder that
//! dies before settling leaves the record uncommitted: another member
//! forwards it again (at least once: a message may come back twice, never
//! not at all).
//!
//! A forwarder whose partition moves (another instance joined the group)
//! drops what it holds of it: the new owner forwards it.
//!
//! Delays hold the forwarder's watermark: on a crash, records already
//! forwarded but behind an earlier, longer delay are forwarded again. (Kafka
//! deployments with many long delays use one delay topic per delay tier;
//! the orchestrator's delays are seconds to a minute.)

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use multiagents_core::Result;
use multiagents_core::scheduler::millis;

use super::Shared;
use super::produce::Record;
use super::reader::{self, Received};
use crate::names;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, millis)
}

/// `record` (bound for its topic) as a delay-topic record due in `delay`.
pub(crate) fn delayed(shared: &Shared, record: Record, delay: Duration) -> Record {
    let due = now_ms().saturating_add(millis(delay));
    let mut out = Record::new(shared.names.delay(), record.key, record.value)
        .with_header(names::DUE, due)
        .with_header(names::TARGET, record.topic);
    out.headers.extend(record.headers);
    out
}

/// Starts this transport's member of the forwarder group (once).
///
/// # Errors
/// Creating the delay topic or the consumer.
pub(crate) async fn ensure_forwarder(shared: &Arc<Shared>) -> Result<()> {
    let mut started = shared.forwarder.lock().await;
    if *started {
        return Ok(());
    }
    let topic = shared.names.delay();
    shared.topics.ensure(&[&topic]).await?;
    let mut rx = reader::start(
        &shared.config,
        &shared.names.delay_group(),
        &[&topic],
        shared.config.max_delayed,
        shared.closed.clone(),
    )?
    .records;
    let shared2 = shared.clone();
    tokio::spawn(async move {
        while let Some(received) = rx.recv().await {
            match received {
                Ok(r) => {
                    tokio::spawn(forward(shared2.clone(), r));
                }
                Err(e) => tracing::warn!(error = %e, "kafka: delay forwarder"),
            }
        }
    });
    *started = true;
    Ok(())
}

/// Waits until `r` is due, publishes it to its topic, settles it.
async fn forward(shared: Arc<Shared>, r: Received) {
    let (Some(due), Some(target)) = (
        r.header(names::DUE).and_then(|d| d.parse::<u64>().ok()),
        r.header(names::TARGET).map(str::to_string),
    ) else {
        tracing::warn!(origin = %r.ticket.origin(), "kafka: a record on the delay topic without its due time or target; dropped");
        r.ticket.settle();
        return;
    };
    let wait = Duration::from_millis(due.saturating_sub(now_ms()));
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        // Closing: leave it unsettled for another forwarder.
        () = shared.closed.cancelled() => return,
    }
    let mut record = Record::new(target, r.key.clone(), r.value.clone());
    for name in [names::DELIVERIES, names::STRIKES] {
        if let Some(n) = r.header(name) {
            record = record.with_header(name, n);
        }
    }
    // A partition that moved while this record waited is its new owner's
    // to forward (from the committed watermark): forwarding it here too
    // would send it twice.
    shared
        .replace_until_done(&r.ticket, record, false, "kafka.delay")
        .await;
}
