//! Coalescing concurrent requests into one round trip: callers hand an
//! item to a [`Batcher`] and wait; its task takes everything queued (up to
//! `max` items), runs one operation for all of them and answers each
//! caller. Under load, many acks become one `XACK id id …` on Redis and
//! many publishes one script call; alone, a request goes out at once (no
//! linger). Needs a tokio runtime (it spawns its task).

use std::future::Future;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use tokio::sync::{Semaphore, mpsc, oneshot};

type Waiter = oneshot::Sender<Result<()>>;

/// Batches `T`s for a handler; see the [module docs](self).
pub struct Batcher<T> {
    tx: mpsc::UnboundedSender<(T, Waiter)>,
    op: &'static str,
}

impl<T: Send + 'static> Batcher<T> {
    /// Starts the task: batches of at most `max` items, at most `in_flight`
    /// batches at once; `op` names the operation in errors. The task ends
    /// when the batcher is dropped.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start<F, Fut>(op: &'static str, max: usize, in_flight: usize, handle: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(T, Waiter)>();
        let handle = Arc::new(handle);
        let slots = Arc::new(Semaphore::new(in_flight.max(1)));
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let mut items = Vec::with_capacity(16);
                let mut waiters = Vec::with_capacity(16);
                let (item, waiter) = first;
                items.push(item);
                waiters.push(waiter);
                while items.len() < max {
                    match rx.try_recv() {
                        Ok((item, waiter)) => {
                            items.push(item);
                            waiters.push(waiter);
                        }
                        Err(_) => break,
                    }
                }
                metrics::histogram!("multiagents_batch_size", "op" => op).record(items.len() as f64);
                let run = handle(items);
                tokio::spawn(async move {
                    let result = run.await;
                    for w in waiters {
                        let _ = w.send(match &result {
                            Ok(()) => Ok(()),
                            Err(e) => Err(copy(e)),
                        });
                    }
                    drop(slot);
                });
            }
        });
        Batcher { tx, op }
    }

    /// Queues `item` and waits for its batch's outcome.
    ///
    /// # Errors
    /// The batch's error (every item of a batch shares it); `Closed` when
    /// the task has stopped.
    pub async fn submit(&self, item: T) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let closed =
            || Error::new(ErrorKind::Closed, "the batching task has stopped").with_operation(self.op);
        self.tx.send((item, tx)).map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

/// The same error for another waiter of the batch (errors are not `Clone`:
/// the source is kept by the first, rendered into the message).
fn copy(e: &Error) -> Error {
    let mut out = Error::new(e.kind(), e.message().to_string())
        .with_operation(e.operation())
        .with_retryable(e.is_retryable());
    for (k, v) in e.context() {
        out = out.with_context(k, v);
    }
    out
}
