//! [`CachedStore`]: a moka cache in front of any [`StateStore`].
//!
//! This module owns the handle, the moka cache (weigher, expiry, eviction
//! listener) and the dispatch between modes; the read-through and
//! write-through paths live in `through`, the write-behind queue and its
//! flusher in `write_behind`, the counters in `stats`, the settings in
//! `config`.
//!
//! # Reads
//! `get` answers from (in order) a pending write-behind write, the cache, or
//! the store; a value found in the store is cached (a missing key is not).
//! Cache entries are weighed by size (key + value + ~64 bytes) against
//! [`CacheConfig::max_capacity_bytes`] and dropped after
//! [`CacheConfig::ttl`] / [`CacheConfig::tti`].
//!
//! # Expiry
//! A value written through this `CachedStore` with a TTL is cached with its
//! exact store expiry (computed just before the store call, so never later
//! than the store's) and is never served past it. Once that expiry passes,
//! the entry stays for a grace of 5 s as a marker and `get` answers
//! `None` from it: the store's own expiry is a store call's latency later,
//! and a read in between would otherwise cache the old value with no expiry
//! at all. A value *read through*
//! from the store carries no expiry (the [`StateStore`] contract does not
//! return one), so if it was written with a TTL elsewhere it may be served
//! until the cache's own `ttl` ends.
//!
//! # Staleness across instances
//! The cache is per `CachedStore`. A write made by another instance (or
//! directly on the inner store) is not seen until the cached entry expires
//! (`ttl`, default 5 min) or is evicted; a key whose TTL ended here reads
//! as absent for that grace (5 s) even if another instance rewrote it. Correctness never depends on the
//! cache: `compare_and_swap` always goes to the store, and a `Conflict` (or
//! any error) invalidates the entry, so the next `get` reads the store's
//! current value. Read-modify-write loops built on CAS therefore converge.
//!
//! # Writes
//! * [`WriteMode::WriteThrough`] (default): `put`, `put_batch`, `delete` and
//!   `compare_and_swap` go to the store first; only on success is the cache
//!   updated (on failure the entry is invalidated). Nothing acknowledged is
//!   lost.
//! * [`WriteMode::WriteBehind`] (opt-in): `put`/`put_batch` are acknowledged
//!   once queued and cached, with the version [`Version::PENDING`] (also what
//!   `get` reports until the write is flushed): never a stored version, so a
//!   compare-and-swap expecting it conflicts instead of overwriting a newer
//!   value; `capabilities().exact_versions` is false. A background task flushes the queue every
//!   `interval`, or as soon as it holds `max_batch` writes, with
//!   `put_batch` calls of at most `max_batch` entries; the last write of a
//!   key wins. A refused flush keeps the writes queued (newer writes replace
//!   them) and is retried on the next tick. `compare_and_swap` and `scan`
//!   flush first, `delete` removes the queued write and deletes in the store.
//!   [`CachedStore::flush`] flushes now; [`CachedStore::shutdown`] flushes
//!   and stops the task (later writes are written through); dropping the
//!   last handle also flushes (on the runtime the store was created on, if
//!   it still runs). A flush in progress holds back `delete` and
//!   `compare_and_swap` until it ends. **Loss window:** writes acknowledged but not
//!   yet flushed are lost if the process dies within `interval` of them, or
//!   while the store refuses them.
//!
//! # Keys left out
//! Keys under a prefix of [`CacheConfig::uncached`] are read from and
//! written to the store directly: never cached, never queued behind (a
//! `put_batch` holding one is written through whole). A compare-and-swap
//! of one still flushes the queue first.
//!
//! # Concurrency
//! Writes of one key from one `CachedStore` are serialised by a striped
//! async lock held across the store call and the cache update, so the cache
//! ends up holding what the store holds. Reads take no lock: a read-through
//! fill that raced with a write of the same stripe is dropped again (a
//! per-stripe write epoch is compared before and after).

mod config;
mod stats;
#[cfg(test)]
mod tests;
mod through;
#[cfg(test)]
mod uncached_tests;
mod write_behind;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use moka::Expiry;
use moka::future::Cache;
use tokio::sync::Mutex;
use tokio::time::Instant;

pub use config::{CacheConfig, WriteMode};
pub use stats::CacheStats;

use super::{Expected, PutEntry, ScanPage, StateStore, StoreCapabilities, Version, Versioned};
use crate::error::Result;
use crate::scheduler::{Scheduler, TimerChange};
use crate::validate;
use stats::Counters;
use write_behind::{FlusherLink, WriteBehind};

/// Number of lock stripes (and write epochs) per `CachedStore`. A write
/// holds its key's stripe for the store's round trip, so stripes bound the
/// writes in flight: with 128, a store answering in ~50 ms (Kafka on Tansu)
/// capped the e2e harness at 546 workflows/s; with 4096, 1 433 (512 in
/// flight). About 200 KB per cache.
const STRIPES: usize = 4096;
/// How long an entry whose store TTL ended stays cached as an "expired"
/// marker (see the module docs on expiry): far longer than a store call.
const EXPIRED_GRACE: Duration = Duration::from_secs(5);
/// Bytes added to key + value when weighing a cache entry.
const ENTRY_OVERHEAD: usize = 64;

/// A cached value with the version and store expiry it was written with.
#[derive(Debug, Clone)]
struct CachedEntry {
    value: Bytes,
    version: Version,
    expires_at: Option<Instant>,
}

impl CachedEntry {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }

    fn versioned(&self) -> Versioned {
        Versioned {
            value: self.value.clone(),
            version: self.version,
        }
    }
}

/// Makes moka drop an entry [`EXPIRED_GRACE`] after its value's store TTL
/// ends (until then it answers reads with `None`).
struct StoreExpiry;

impl StoreExpiry {
    fn remaining(entry: &CachedEntry) -> Option<Duration> {
        entry.expires_at.map(|at| {
            at.saturating_duration_since(Instant::now())
                .saturating_add(EXPIRED_GRACE)
        })
    }
}

impl Expiry<String, CachedEntry> for StoreExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &CachedEntry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Self::remaining(value)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &CachedEntry,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Self::remaining(value)
    }
}

fn expiry(now: Instant, ttl: Option<Duration>) -> Option<Instant> {
    ttl.and_then(|ttl| now.checked_add(ttl))
}

/// Everything the handles and the flusher task share.
struct Shared<S> {
    store: S,
    cache: Cache<String, CachedEntry>,
    counters: Arc<Counters>,
    stripes: Box<[Mutex<()>]>,
    epochs: Box<[AtomicU64]>,
    max_value: usize,
    config: CacheConfig,
    behind: Option<WriteBehind>,
}

/// A moka cache in front of a [`StateStore`]; itself a `StateStore`, so it
/// can be stacked and is run through the conformance suite. See the
/// [module docs](self) for reads, writes, expiry and the staleness model.
///
/// `Clone` is cheap: clones share the cache, the queue and the store.
///
/// ```
/// use multiagents_core::{CacheConfig, CachedStore, MemoryStore, StateStore};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> multiagents_core::Result<()> {
/// let store = CachedStore::new(MemoryStore::new(), CacheConfig::default())?;
/// store.put("tx:1", "saga".into(), None).await?;
/// assert!(store.get("tx:1").await?.is_some()); // served by the cache
/// assert_eq!(store.stats().hits, 1);
/// # Ok(()) }
/// ```
pub struct CachedStore<S> {
    shared: Arc<Shared<S>>,
    /// Dropping the last clone closes the flusher's channel: final flush.
    _flusher: Option<Arc<FlusherLink>>,
}

impl<S> Clone for CachedStore<S> {
    fn clone(&self) -> Self {
        CachedStore {
            shared: self.shared.clone(),
            _flusher: self._flusher.clone(),
        }
    }
}

impl<S> fmt::Debug for CachedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedStore")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<S> CachedStore<S> {
    /// The store behind the cache. Writes made on it directly bypass the
    /// cache (another instance's view).
    pub fn inner(&self) -> &S {
        &self.shared.store
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> CacheStats {
        let pending = self.shared.behind.as_ref().map_or(0, |wb| wb.len() as u64);
        self.shared.counters.snapshot(
            pending,
            self.shared.cache.entry_count(),
            self.shared.cache.weighted_size(),
        )
    }
}

impl<S: StateStore> CachedStore<S> {
    /// Puts a cache configured by `config` in front of `store`.
    ///
    /// # Errors
    /// `Config` for an unusable setting (zero or absurd lifetimes, a zero
    /// write-behind interval or batch), and for write-behind outside a tokio
    /// runtime (its flusher task is spawned here).
    pub fn new(store: S, config: CacheConfig) -> Result<Self> {
        config.check()?;
        let counters = Arc::new(Counters::default());
        let listener_counters = counters.clone();
        let mut builder = Cache::builder()
            .max_capacity(config.max_capacity_bytes)
            .weigher(|key: &String, entry: &CachedEntry| {
                u32::try_from(
                    key.len()
                        .saturating_add(entry.value.len())
                        .saturating_add(ENTRY_OVERHEAD),
                )
                .unwrap_or(u32::MAX)
            })
            .expire_after(StoreExpiry)
            .eviction_listener(move |_key, _value, cause| {
                if cause.was_evicted() {
                    Counters::bump(&listener_counters.evictions);
                }
            });
        if let Some(ttl) = config.ttl {
            builder = builder.time_to_live(ttl);
        }
        if let Some(tti) = config.tti {
            builder = builder.time_to_idle(tti);
        }
        let (behind, interval) = match config.write_mode {
            WriteMode::WriteBehind { interval, max_batch } => {
                (Some(WriteBehind::new(max_batch)), Some(interval))
            }
            WriteMode::WriteThrough => (None, None),
        };
        let shared = Arc::new(Shared {
            max_value: store.capabilities().max_value,
            store,
            cache: builder.build(),
            counters,
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            epochs: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            config,
            behind,
        });
        let flusher = match interval {
            Some(interval) => Some(Arc::new(write_behind::spawn(shared.clone(), interval)?)),
            None => None,
        };
        Ok(CachedStore {
            shared,
            _flusher: flusher,
        })
    }

    /// Writes every pending write-behind write to the store now.
    ///
    /// # Errors
    /// The store's error if it refuses a batch; the writes stay pending.
    /// Write-through: a no-op.
    pub async fn flush(&self) -> Result<()> {
        self.shared.flush().await
    }

    /// Flushes the pending writes and stops the flusher task; later writes
    /// are written through. Call before the process exits. Write-through: a
    /// no-op.
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    pub async fn shutdown(&self) -> Result<()> {
        match &self._flusher {
            Some(link) => link.shutdown(&self.shared).await,
            None => Ok(()),
        }
    }
}

#[async_trait]
impl<S: StateStore> StateStore for CachedStore<S> {
    fn capabilities(&self) -> StoreCapabilities {
        let mut caps = self.shared.store.capabilities();
        caps.exact_versions &= self.shared.behind.is_none();
        caps
    }

    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        if self.shared.config.is_uncached(key) {
            return self.shared.store.get(key).await;
        }
        self.shared.get(key).await
    }

    /// Drops the cached entry and reads the store (a write-behind write
    /// not yet flushed is still the newest value, and is returned).
    async fn get_fresh(&self, key: &str) -> Result<Option<Versioned>> {
        if self.shared.config.is_uncached(key) {
            return self.shared.store.get_fresh(key).await;
        }
        self.shared.get_fresh(key).await
    }

    async fn put(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<Version> {
        self.shared.check_write(key, &value, ttl, "cached.put")?;
        if self.shared.config.is_uncached(key) {
            return self.shared.store.put(key, value, ttl).await;
        }
        match self.shared.queue() {
            Some(wb) => self.shared.put_behind(wb, key, value, ttl).await,
            None => {
                let _no_flush = self.shared.direct_write().await;
                self.shared.put_through(key, value, ttl).await
            }
        }
    }

    async fn put_batch(&self, entries: Vec<PutEntry>) -> Result<Vec<Version>> {
        for (i, e) in entries.iter().enumerate() {
            self.shared
                .check_write(&e.key, &e.value, e.ttl, "cached.put_batch")
                .map_err(|err| err.with_context("index", i))?;
        }
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let uncached = entries
            .iter()
            .filter(|e| self.shared.config.is_uncached(&e.key))
            .count();
        if uncached == entries.len() {
            return self.shared.store.put_batch(entries).await;
        }
        match self.shared.queue() {
            Some(wb) if uncached == 0 => self.shared.put_batch_behind(wb, entries).await,
            queue => {
                // A batch with keys left out of the cache is written through
                // (whole, so it stays atomic): none of them may wait in the
                // queue, where their reads, which skip it, would miss them.
                // The queue goes first, so that no older queued write of its
                // cached keys lands after it (or is read instead of it).
                if queue.is_some() {
                    self.shared.flush().await?;
                }
                let _no_flush = self.shared.direct_write().await;
                self.shared.put_batch_through(entries).await
            }
        }
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        validate::key(key).map_err(|e| e.with_operation("cached.delete"))?;
        if self.shared.config.is_uncached(key) {
            return self.shared.store.delete(key).await;
        }
        match &self.shared.behind {
            Some(wb) => self.shared.delete_behind(wb, key).await,
            None => self.shared.delete_through(key).await,
        }
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Expected,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<Version> {
        self.compare_and_swap_timed(key, expected, value, ttl, TimerChange::Keep)
            .await
    }

    fn scheduler(&self) -> Option<Arc<dyn Scheduler>> {
        self.shared.store.scheduler()
    }

    async fn compare_and_swap_timed(
        &self,
        key: &str,
        expected: Expected,
        value: Bytes,
        ttl: Option<Duration>,
        timer: TimerChange,
    ) -> Result<Version> {
        self.shared
            .check_write(key, &value, ttl, "cached.compare_and_swap")?;
        // Writes acknowledged before this one reach the store first, for
        // keys left out of the cache too (a step's state writes before the
        // transaction state that records the step).
        self.shared.flush().await?;
        if self.shared.config.is_uncached(key) {
            return self
                .shared
                .store
                .compare_and_swap_timed(key, expected, value, ttl, timer)
                .await;
        }
        let _no_flush = self.shared.direct_write().await;
        self.shared.cas_through(key, expected, value, ttl, timer).await
    }

    async fn scan(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<ScanPage> {
        self.shared.flush().await?;
        self.shared.store.scan(prefix, cursor, limit).await
    }

    /// Flushes pending writes and stops the flusher ([`shutdown`](Self::shutdown)),
    /// then closes the store behind the cache.
    async fn close(&self) -> Result<()> {
        self.shutdown().await?;
        self.shared.store.close().await
    }
}
