//! Broadcast-mode subscriptions of the in-memory transport: a receiver of
//! the topic's `tokio::sync::broadcast` channel.
//!
//! At-most-once: a subscriber more than `broadcast_capacity` messages behind
//! loses the oldest ones; they are counted in
//! [`MemoryTransport::broadcast_dropped`](super::MemoryTransport::broadcast_dropped)
//! and the stream goes on with the oldest message still held.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::Stream;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::Shared;
use crate::envelope::Envelope;
use crate::error::Result;
use crate::transport::Delivery;

/// The stream of a broadcast subscription on `topic`.
pub(super) fn stream(
    shared: Arc<Shared>,
    topic: String,
    rx: Receiver<Envelope>,
) -> impl Stream<Item = Result<Delivery>> + Send + 'static {
    let sub = BroadcastSub { shared, topic, rx };
    futures_util::stream::unfold(sub, |mut sub| async move {
        let envelope = sub.next().await?;
        Some((Ok(Delivery::unacked(envelope)), sub))
    })
}

struct BroadcastSub {
    shared: Arc<Shared>,
    topic: String,
    rx: Receiver<Envelope>,
}

impl BroadcastSub {
    fn lagged(&self, missed: u64) {
        self.shared.broadcast_dropped.fetch_add(missed, Ordering::Relaxed);
        tracing::debug!(
            topic = %self.topic,
            missed,
            "memory transport: broadcast subscriber fell behind; oldest messages dropped"
        );
    }

    /// The next message, or `None` once the transport is closed.
    async fn next(&mut self) -> Option<Envelope> {
        loop {
            if self.shared.is_closed() {
                return None;
            }
            match self.rx.try_recv() {
                Ok(envelope) => return Some(envelope),
                Err(TryRecvError::Lagged(missed)) => {
                    self.lagged(missed);
                    continue;
                }
                Err(TryRecvError::Closed) => return None,
                Err(TryRecvError::Empty) => {}
            }
            let closed = pin!(self.shared.close.notified());
            if self.shared.is_closed() {
                return None;
            }
            let received = tokio::select! {
                biased;
                () = closed => return None,
                received = self.rx.recv() => received,
            };
            match received {
                Ok(envelope) => return Some(envelope),
                Err(RecvError::Lagged(missed)) => self.lagged(missed),
                Err(RecvError::Closed) => return None,
            }
        }
    }
}
