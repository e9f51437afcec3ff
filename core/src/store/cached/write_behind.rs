//! Write-behind for [`CachedStore`](super::CachedStore): the queue of
//! pending writes, the batching flush and the flusher task.
//!
//! * The queue maps a key to its last acknowledged, unflushed write (last
//!   write wins), tagged with a sequence number.
//! * A flush snapshots the queue, writes it with `put_batch` in chunks of at
//!   most `max_batch` (a write whose TTL ran out while queued becomes a
//!   delete), then, per key and under the key's lock, caches the store's
//!   real version and drops the queue entry *only if* no newer write
//!   replaced it meanwhile. Entries of a refused chunk simply stay queued:
//!   retrying is the next flush.
//! * Flushes are serialised by an async `RwLock` taken for writing; direct
//!   store writes (`delete`, `compare_and_swap`, writes after shutdown) take
//!   it for reading, so a flush can never write an older value over them.
//! * The task holds the shared state (store, cache, queue), not a handle. It
//!   flushes every `interval`, when woken because the queue reached
//!   `max_batch`, and a last time when told to shut down or when the last
//!   handle is dropped (its command channel closes).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, RwLock, RwLockReadGuard, mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use super::{CachedEntry, Shared, expiry};
use crate::error::{Error, ErrorKind, Result};
use crate::store::{PutEntry, StateStore, Version, Versioned};

#[derive(Debug, Clone)]
struct Pending {
    value: Bytes,
    version: Version,
    expires_at: Option<Instant>,
    seq: u64,
}

impl Pending {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

/// The write-behind state shared by handles and the flusher task.
pub(super) struct WriteBehind {
    pending: Mutex<HashMap<String, Pending>>,
    flush_lock: RwLock<()>,
    wake: Notify,
    closed: AtomicBool,
    next_seq: AtomicU64,
    max_batch: usize,
}

impl WriteBehind {
    pub(super) fn new(max_batch: usize) -> Self {
        WriteBehind {
            pending: Mutex::new(HashMap::new()),
            flush_lock: RwLock::new(()),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            next_seq: AtomicU64::new(0),
            max_batch,
        }
    }

    fn queue(&self) -> MutexGuard<'_, HashMap<String, Pending>> {
        // Nothing panics while holding the queue; tolerate poisoning anyway.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes acknowledged but not yet flushed.
    pub(super) fn len(&self) -> usize {
        self.queue().len()
    }

    /// `Some(answer)` when the key has a pending write (`None` inside if its
    /// TTL already ran out).
    pub(super) fn lookup(&self, key: &str, now: Instant) -> Option<Option<Versioned>> {
        self.queue().get(key).map(|p| {
            p.is_live(now).then(|| Versioned {
                value: p.value.clone(),
                version: p.version,
            })
        })
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn wake_if_full(&self) {
        if self.len() >= self.max_batch {
            self.wake.notify_one();
        }
    }
}

enum Command {
    Shutdown(oneshot::Sender<Result<()>>),
}

/// The handles' end of the flusher task: dropping the last one makes the
/// task flush a final time and stop.
pub(super) struct FlusherLink {
    tx: mpsc::UnboundedSender<Command>,
}

impl FlusherLink {
    /// Stops accepting queued writes, then has the task flush and stop.
    pub(super) async fn shutdown<S: StateStore>(&self, shared: &Shared<S>) -> Result<()> {
        if let Some(wb) = &shared.behind {
            wb.closed.store(true, Ordering::SeqCst);
        }
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Command::Shutdown(reply)).is_ok()
            && let Ok(result) = answer.await
        {
            return result;
        }
        // The task is gone already (shut down before, or its runtime ended).
        shared.flush().await
    }
}

/// Spawns the flusher task on the current tokio runtime.
pub(super) fn spawn<S: StateStore>(shared: Arc<Shared<S>>, interval: Duration) -> Result<FlusherLink> {
    let handle = tokio::runtime::Handle::try_current().map_err(|e| {
        Error::new(ErrorKind::Config, "write-behind needs a tokio runtime")
            .with_operation("cached.new")
            .with_source(e)
    })?;
    let (tx, rx) = mpsc::unbounded_channel();
    handle.spawn(run(shared, rx, interval));
    Ok(FlusherLink { tx })
}

async fn run<S: StateStore>(
    shared: Arc<Shared<S>>,
    mut rx: mpsc::UnboundedReceiver<Command>,
    interval: Duration,
) {
    let Some(wb) = shared.behind.as_ref() else {
        return;
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            _ = ticker.tick() => shared.flush_logged().await,
            () = wb.wake.notified() => shared.flush_logged().await,
            cmd = rx.recv() => {
                match cmd {
                    Some(Command::Shutdown(reply)) => {
                        // The caller may have gone away; nothing to report then.
                        let _ = reply.send(shared.flush().await);
                    }
                    None => shared.flush_logged().await,
                }
                return;
            }
        }
    }
}

impl<S: StateStore> Shared<S> {
    /// The queue, when writes are to be queued (write-behind, not shut down).
    pub(super) fn queue(&self) -> Option<&WriteBehind> {
        self.behind.as_ref().filter(|wb| !wb.is_closed())
    }

    /// Held by direct store writes in write-behind mode: no flush meanwhile.
    pub(super) async fn direct_write(&self) -> Option<RwLockReadGuard<'_, ()>> {
        match &self.behind {
            Some(wb) => Some(wb.flush_lock.read().await),
            None => None,
        }
    }

    /// Writes every queued write to the store (no-op for write-through).
    pub(super) async fn flush(&self) -> Result<()> {
        let Some(wb) = &self.behind else {
            return Ok(());
        };
        // A queued write leaves the queue only once it is in the store, so an
        // empty queue means there is nothing to wait for (keeps CAS calls
        // from queueing behind each other's read guards).
        if wb.len() == 0 {
            return Ok(());
        }
        let _only_flush = wb.flush_lock.write().await;
        self.flush_locked(wb).await
    }

    async fn flush_logged(&self) {
        if let Err(error) = self.flush().await {
            let pending = self.behind.as_ref().map_or(0, WriteBehind::len);
            tracing::warn!(%error, pending, "write-behind flush failed; the writes stay pending and are retried");
        }
    }

    async fn flush_locked(&self, wb: &WriteBehind) -> Result<()> {
        let snapshot: Vec<(String, Pending)> =
            wb.queue().iter().map(|(k, p)| (k.clone(), p.clone())).collect();
        if snapshot.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        let (live, expired): (Vec<_>, Vec<_>) = snapshot.into_iter().partition(|(_, p)| p.is_live(now));
        let mut first_error = None;
        for (key, p) in expired {
            // The queued write replaced the stored value and then expired.
            match self.store.delete(&key).await {
                Ok(_) => self.settle(wb, &key, p.seq, None).await,
                Err(e) => {
                    super::Counters::bump(&self.counters.flush_errors);
                    first_error.get_or_insert(e);
                }
            }
        }
        for chunk in live.chunks(wb.max_batch) {
            let batch = chunk
                .iter()
                .map(|(key, p)| {
                    let ttl = p
                        .expires_at
                        .map(|at| at.saturating_duration_since(now).max(Duration::from_millis(1)));
                    PutEntry::new(key.clone(), p.value.clone(), ttl)
                })
                .collect();
            let result = self.store.put_batch(batch).await.and_then(|versions| {
                if versions.len() == chunk.len() {
                    Ok(versions)
                } else {
                    Err(Error::new(
                        ErrorKind::Unexpected,
                        "put_batch returned the wrong number of versions",
                    )
                    .with_operation("cached.flush")
                    .with_context("entries", chunk.len())
                    .with_context("versions", versions.len()))
                }
            });
            match result {
                Ok(versions) => {
                    self.counters.batches_written.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .entries_written
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    for ((key, p), version) in chunk.iter().zip(versions) {
                        let entry = CachedEntry {
                            value: p.value.clone(),
                            version,
                            expires_at: p.expires_at,
                        };
                        self.settle(wb, key, p.seq, Some(entry)).await;
                    }
                }
                Err(e) => {
                    super::Counters::bump(&self.counters.flush_errors);
                    first_error.get_or_insert(e);
                    break;
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// A flushed write is in the store: cache its real version and drop it
    /// from the queue, unless a newer write of the key replaced it.
    async fn settle(&self, wb: &WriteBehind, key: &str, seq: u64, entry: Option<CachedEntry>) {
        let _key = self.lock(key).await;
        let superseded = wb.queue().get(key).is_none_or(|p| p.seq != seq);
        if superseded {
            return;
        }
        match entry {
            Some(entry) => self.cache_put(key, entry).await,
            None => self.cache_drop(key).await,
        }
        wb.queue().remove(key);
    }

    /// Queues one write under its key's lock; returns [`Version::PENDING`].
    async fn enqueue(&self, wb: &WriteBehind, key: &str, value: Bytes, ttl: Option<Duration>) -> Version {
        let _key = self.lock(key).await;
        // Not a stored version: a CAS against it must conflict (see
        // `Version::PENDING`); the real one is cached once flushed.
        let version = Version::PENDING;
        let expires_at = expiry(Instant::now(), ttl);
        let pending = Pending {
            value: value.clone(),
            version,
            expires_at,
            seq: wb.next_seq.fetch_add(1, Ordering::Relaxed),
        };
        wb.queue().insert(key.to_owned(), pending);
        let entry = CachedEntry {
            value,
            version,
            expires_at,
        };
        self.cache_put(key, entry).await;
        version
    }

    /// After queueing: wake the flusher if the queue is full, and flush
    /// ourselves if a shutdown raced with the write (no task will).
    async fn after_enqueue(&self, wb: &WriteBehind) -> Result<()> {
        wb.wake_if_full();
        if wb.is_closed() {
            self.flush().await?;
        }
        Ok(())
    }

    pub(super) async fn put_behind(
        &self,
        wb: &WriteBehind,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<Version> {
        let version = self.enqueue(wb, key, value, ttl).await;
        self.after_enqueue(wb).await?;
        Ok(version)
    }

    pub(super) async fn put_batch_behind(
        &self,
        wb: &WriteBehind,
        entries: Vec<PutEntry>,
    ) -> Result<Vec<Version>> {
        let mut versions = Vec::with_capacity(entries.len());
        for e in entries {
            versions.push(self.enqueue(wb, &e.key, e.value, e.ttl).await);
        }
        self.after_enqueue(wb).await?;
        Ok(versions)
    }

    /// Deletes in the store, then drops the queued write of the key.
    pub(super) async fn delete_behind(&self, wb: &WriteBehind, key: &str) -> Result<bool> {
        let _no_flush = wb.flush_lock.read().await;
        let _key = self.lock(key).await;
        let now = Instant::now();
        let result = self.store.delete(key).await;
        self.cache_drop(key).await;
        let existed = result?;
        let queued = wb.queue().remove(key);
        Ok(existed || queued.is_some_and(|p| p.is_live(now)))
    }
}
