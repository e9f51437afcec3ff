//! Broadcast on Pub/Sub. Publishing packs the envelopes of one call for
//! one topic into one message ([`Envelope::pack`]: a CBOR array of
//! envelopes) while it stays within the wire limit; a lone envelope goes
//! as itself. Subscriptions have a connection of their own, which
//! reconnects and resubscribes after a loss (messages published meanwhile
//! are missed: broadcast is at-most-once), and unpack what they receive.

use std::time::Duration;

use futures_util::StreamExt;
use multiagents_core::{Delivery, Envelope, Result, Subscription};
use redis::aio::PubSub;
use tokio::sync::mpsc;

use crate::connection::Conn;
use crate::error::map;

/// Subscribes before returning, so every message published after this
/// returns is received.
pub(crate) async fn subscribe(conn: &Conn, topic: &str, wire_max: usize) -> Result<Subscription> {
    let channel = conn.keys().channel(topic);
    let pubsub = open(conn, &channel)
        .await
        .map_err(|e| e.with_context("topic", topic))?;
    let (tx, rx) = mpsc::channel(1024);
    conn.spawn(pump(conn.clone(), channel, pubsub, tx, wire_max));
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
                () = conn.closed().cancelled() => return,
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
