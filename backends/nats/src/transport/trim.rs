//! Trimming the queue stream: every [`INTERVAL`], each topic that has
//! groups is purged below the oldest message any of them has not acked.
//! Topics without a group keep their messages up to the stream's
//! `max_age` (a group that subscribes later receives them); dead letters
//! are never purged here.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::stream::Stream;
use futures_util::StreamExt;

use crate::connection::Conn;

/// How often the stream is trimmed.
const INTERVAL: Duration = Duration::from_secs(5);

/// Starts the trimmer; it stops when the transport is closed.
pub(super) fn start(conn: Conn, stream: Stream) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = conn.closed.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = trim(&conn, &stream).await {
                tracing::debug!(error = %e, "trimming the NATS queue stream failed; retried next time");
            }
        }
    });
}

async fn trim(conn: &Conn, stream: &Stream) -> Result<(), async_nats::Error> {
    let queue_subjects = conn.names.queue_subject("");
    // Per topic subject: the lowest ack floor among its groups.
    let mut floors: HashMap<String, u64> = HashMap::new();
    let mut consumers = stream.consumers();
    while let Some(info) = consumers.next().await {
        let info = info?;
        let subject = info.config.filter_subject;
        if !subject.starts_with(&queue_subjects) {
            continue;
        }
        let floor = info.ack_floor.stream_sequence;
        floors
            .entry(subject)
            .and_modify(|f| *f = (*f).min(floor))
            .or_insert(floor);
    }
    for (subject, floor) in floors {
        if floor > 0 {
            // Removes the subject's messages below `floor + 1`: all acked.
            stream.purge().filter(subject).sequence(floor + 1).await?;
        }
    }
    Ok(())
}
