//! Broadcast on Pub/Sub. Publishing packs the envelopes of one call for
//! one topic into one message (a CBOR array of envelopes) while it stays
//! within the wire limit; a lone envelope goes as itself. Subscriptions
//! have a connection of their own, which reconnects and resubscribes after
//! a loss (messages published meanwhile are missed: broadcast is
//! at-most-once), and unpack what they receive.

use std::time::Duration;

use futures_util::StreamExt;
use multiagents_core::{Delivery, Envelope, Result, Subscription};
use redis::aio::PubSub;
use tokio::sync::mpsc;

use crate::connection::Conn;
use crate::error::map;

/// Ends a run: one message for it.
fn flush<'a>(run: &mut Vec<&'a Envelope>, out: &mut Vec<(&'a str, Vec<u8>)>) -> Result<()> {
    match run.as_slice() {
        [] => {}
        [one] => out.push((one.topic.as_str(), one.to_wire()?)),
        many => out.push((many[0].topic.as_str(), Envelope::batch_to_wire(many)?)),
    }
    run.clear();
    Ok(())
}

/// `(topic, message)` pairs carrying `envelopes` in order: runs of one
/// topic packed into one message while it stays within `wire_max` bytes.
pub(crate) fn pack(envelopes: &[Envelope], wire_max: usize) -> Result<Vec<(&str, Vec<u8>)>> {
    let mut out: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut run: Vec<&Envelope> = Vec::new();
    let mut run_bytes = 0;
    for e in envelopes {
        // An envelope's wire form is its payload and ~100 bytes of header.
        let size = e.payload.len() + 128 + e.topic.len() + e.key.len();
        let same = run.first().is_some_and(|r| r.topic == e.topic);
        if !same || run_bytes + size > wire_max {
            flush(&mut run, &mut out)?;
            run_bytes = 0;
        }
        run.push(e);
        run_bytes += size;
    }
    flush(&mut run, &mut out)?;
    Ok(out)
}

/// Subscribes before returning, so every message published after this
/// returns is received.
pub(crate) async fn subscribe(conn: &Conn, topic: &str, wire_max: usize) -> Result<Subscription> {
    let channel = conn.keys().channel(topic);
    let pubsub = open(conn, &channel)
        .await
        .map_err(|e| e.with_context("topic", topic))?;
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(pump(conn.clone(), channel, pubsub, tx, wire_max));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item, rx))
    });
    Ok(Subscription::new(stream))
}

async fn open(conn: &Conn, channel: &str) -> Result<PubSub> {
    let connect = conn.client().get_async_pubsub();
    let mut pubsub = tokio::time::timeout(conn.config().connect_timeout, connect)
        .await
        .map_err(|_| {
            multiagents_core::Error::new(
                multiagents_core::ErrorKind::Timeout,
                "no Pub/Sub connection to Redis in time",
            )
            .with_operation("redis.subscribe")
        })?
        .map_err(|e| map("redis.subscribe", e))?;
    pubsub
        .subscribe(channel)
        .await
        .map_err(|e| map("redis.subscribe", e).with_context("channel", channel))?;
    Ok(pubsub)
}

async fn pump(
    conn: Conn,
    channel: String,
    mut pubsub: PubSub,
    tx: mpsc::Sender<Result<Delivery>>,
    wire_max: usize,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        {
            let mut messages = pubsub.on_message();
            loop {
                let msg = tokio::select! {
                    m = messages.next() => m,
                    _ = tx.closed() => return,
                    () = conn.closed().cancelled() => return,
                };
                let Some(msg) = msg else { break };
                let items: Vec<Result<Delivery>> =
                    match Envelope::batch_from_wire(msg.get_payload_bytes(), wire_max) {
                        Ok(envelopes) => envelopes.into_iter().map(|e| Ok(Delivery::unacked(e))).collect(),
                        Err(e) => {
                            let e = e
                                .with_operation("redis.broadcast")
                                .with_context("channel", &channel);
                            tracing::warn!(error = %e, "a broadcast message is not an envelope");
                            vec![Err(e)]
                        }
                    };
                for item in items {
                    // A full buffer drops the message (at-most-once; never block Redis).
                    match tx.try_send(item) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            metrics::counter!("multiagents_redis_broadcast_dropped_total").increment(1);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
            }
        }
        tracing::warn!(channel = %channel, "Pub/Sub connection lost; resubscribing");
        loop {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = tx.closed() => return,
            }
            match open(&conn, &channel).await {
                Ok(p) => {
                    pubsub = p;
                    backoff = Duration::from_millis(100);
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "Pub/Sub reconnect failed");
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_one_topic_pack_into_one_message_within_the_limit() {
        let e = |topic: &str, n: u8| Envelope::new(topic, "k", vec![n; 100]);
        let batch = [e("a", 1), e("a", 2), e("b", 3), e("a", 4)];
        let packed = pack(&batch, 1 << 20).expect("pack");
        let topics: Vec<&str> = packed.iter().map(|(t, _)| *t).collect();
        assert_eq!(topics, ["a", "b", "a"], "one message per run of a topic");
        let first = Envelope::batch_from_wire(&packed[0].1, 1 << 20).expect("unpack");
        assert_eq!(first.iter().map(|e| e.payload[0]).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(
            Envelope::batch_from_wire(&packed[1].1, 1 << 20)
                .expect("lone")
                .len(),
            1
        );
        // A limit of about one envelope packs nothing.
        assert_eq!(pack(&batch, 300).expect("pack").len(), 4);
        assert!(
            Envelope::batch_from_wire(&[0x81, 0x01], 1 << 20).is_err(),
            "an array of non-envelopes is a typed error"
        );
        assert!(
            Envelope::batch_from_wire(&packed[0].1, 10).is_err(),
            "over the limit"
        );
    }
}
