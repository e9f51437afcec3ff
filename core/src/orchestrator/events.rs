//! Lifecycle events leave an instance through one queue and one sender
//! task: a state change hands its events over without waiting (its
//! in-process steps start at once), the instance's events go out in the
//! order they were made, and whatever piled up meanwhile goes out as one
//! broadcast (one `PUBLISH` per topic run on Redis). Events are
//! at-most-once: a full queue or a failed broadcast drops them (counted in
//! `multiagents_events_dropped_total`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::envelope::Envelope;
use crate::transport::Transport;

/// Events waiting to be sent, at most.
const QUEUE: usize = 1 << 16;
/// Events sent in one broadcast, at most.
const BATCH: usize = 1024;

/// The sending end, kept by the instance.
pub(crate) struct Events {
    tx: mpsc::Sender<Envelope>,
}

impl Events {
    /// Queues `envelopes` for broadcast, in order.
    pub(crate) fn send(&self, envelopes: Vec<Envelope>) {
        for e in envelopes {
            if self.tx.try_send(e).is_err() {
                metrics::counter!("multiagents_events_dropped_total").increment(1);
            }
        }
    }
}

/// The sender task, and how to stop it.
pub(crate) struct Sender {
    /// Tells the task to send what is queued, then end.
    pub(crate) drain: CancellationToken,
    pub(crate) handle: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Sender {
    /// Sends what is queued and ends the task (at most `within`).
    pub(crate) async fn finish(&self, within: Duration) {
        self.drain.cancel();
        let handle = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle
            && tokio::time::timeout(within, h).await.is_err()
        {
            tracing::warn!("events still unsent at shutdown are dropped");
        }
    }
}

/// Starts the sender task over `transport`.
pub(crate) fn start(transport: Arc<dyn Transport>) -> (Events, Sender) {
    let (tx, mut rx) = mpsc::channel::<Envelope>(QUEUE);
    let drain = CancellationToken::new();
    let stop = drain.clone();
    let handle = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let last = tokio::select! {
                biased;
                n = rx.recv_many(&mut batch, BATCH) => n == 0,
                () = stop.cancelled() => {
                    rx.close();
                    while let Ok(e) = rx.try_recv() {
                        batch.push(e);
                    }
                    true
                }
            };
            if !batch.is_empty() {
                let n = batch.len() as u64;
                metrics::histogram!("multiagents_batch_size", "op" => "events").record(n as f64);
                if let Err(e) = transport.broadcast(std::mem::take(&mut batch)).await {
                    metrics::counter!("multiagents_events_dropped_total").increment(n);
                    tracing::warn!(error = %e, events = n, "cannot broadcast workflow events; they are lost");
                }
            }
            if last {
                return;
            }
        }
    });
    let sender = Sender {
        drain,
        handle: std::sync::Mutex::new(Some(handle)),
    };
    (Events { tx }, sender)
}
