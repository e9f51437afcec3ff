//! The read-through and write-through paths of
//! [`CachedStore`](super::CachedStore): key striping, the ordering of cache
//! updates against store calls, and validation.
//!
//! Every store write of a key, and the cache update that follows it, happen
//! under the key's stripe lock, so the cache ends up holding what the store
//! holds. A read-through fill takes no lock; it is dropped again when a write
//! of the same stripe (which bumps the stripe's epoch *after* its store
//! call) happened between the read's start and its fill.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rustc_hash::FxHasher;
use tokio::sync::MutexGuard;
use tokio::time::Instant;

use super::{CachedEntry, Counters, STRIPES, Shared, expiry};
use crate::error::Result;
use crate::scheduler::TimerChange;
use crate::store::{Expected, PutEntry, StateStore, Version, Versioned};
use crate::validate;

impl<S: StateStore> Shared<S> {
    pub(super) fn stripe(&self, key: &str) -> usize {
        let mut hasher = FxHasher::default();
        key.hash(&mut hasher);
        (hasher.finish() % STRIPES as u64) as usize
    }

    pub(super) async fn lock(&self, key: &str) -> MutexGuard<'_, ()> {
        self.stripes[self.stripe(key)].lock().await
    }

    /// Locks the stripes of all `keys`, in index order (no deadlock).
    pub(super) async fn lock_all<'a>(&self, keys: impl Iterator<Item = &'a str>) -> Vec<MutexGuard<'_, ()>> {
        let mut idx: Vec<usize> = keys.map(|k| self.stripe(k)).collect();
        idx.sort_unstable();
        idx.dedup();
        let mut guards = Vec::with_capacity(idx.len());
        for i in idx {
            guards.push(self.stripes[i].lock().await);
        }
        guards
    }

    pub(super) fn epoch(&self, key: &str) -> &AtomicU64 {
        &self.epochs[self.stripe(key)]
    }

    /// Records `entry` as the key's current value (call under the key's lock).
    pub(super) async fn cache_put(&self, key: &str, entry: CachedEntry) {
        self.epoch(key).fetch_add(1, Ordering::SeqCst);
        self.cache.insert(key.to_owned(), entry).await;
    }

    /// Settles the cache after a store write of `value` (under the key's
    /// lock): success caches it with its version, any error (including a
    /// CAS conflict: another instance wrote) drops the stale entry.
    async fn settle_write(
        &self,
        key: &str,
        written: Result<Version>,
        value: Bytes,
        expires_at: Option<Instant>,
    ) -> Result<Version> {
        match written {
            Ok(version) => {
                self.cache_put(
                    key,
                    CachedEntry {
                        value,
                        version,
                        expires_at,
                    },
                )
                .await;
                Ok(version)
            }
            Err(e) => {
                self.cache_drop(key).await;
                Err(e)
            }
        }
    }

    /// Forgets the key's cached value (call under the key's lock).
    pub(super) async fn cache_drop(&self, key: &str) {
        self.epoch(key).fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate(key).await;
    }

    pub(super) fn check_write(
        &self,
        key: &str,
        value: &Bytes,
        ttl: Option<Duration>,
        op: &'static str,
    ) -> Result<()> {
        validate::key(key).map_err(|e| e.with_operation(op))?;
        validate::ttl(ttl).map_err(|e| e.with_operation(op).with_context("key", key))?;
        validate::size("value", value.len(), self.max_value)
            .map_err(|e| e.with_operation(op).with_context("key", key))
    }

    pub(super) async fn get_fresh(&self, key: &str) -> Result<Option<Versioned>> {
        validate::key(key).map_err(|e| e.with_operation("cached.get_fresh"))?;
        if let Some(found) = self.behind.as_ref().and_then(|wb| wb.lookup(key, Instant::now())) {
            return Ok(found);
        }
        let found = self.store.get(key).await?;
        // Never serve anything older than this read from the cache again.
        // (No insert: a fresh read is often followed by a write anyway.)
        if let Some(entry) = self.cache.get(key).await
            && found.as_ref().is_none_or(|v| v.version != entry.version)
        {
            self.cache.invalidate(key).await;
        }
        Ok(found)
    }

    pub(super) async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        validate::key(key).map_err(|e| e.with_operation("cached.get"))?;
        if let Some(found) = self.behind.as_ref().and_then(|wb| wb.lookup(key, Instant::now())) {
            Counters::bump(&self.counters.hits);
            return Ok(found);
        }
        if let Some(entry) = self.cache.get(key).await {
            // An expired entry is a marker: the store may hold the value a
            // little longer (its expiry started later), but it is gone.
            Counters::bump(&self.counters.hits);
            return Ok(entry.is_live(Instant::now()).then(|| entry.versioned()));
        }
        Counters::bump(&self.counters.misses);
        let before = self.epoch(key).load(Ordering::SeqCst);
        let found = self.store.get(key).await?;
        if let Some(v) = &found {
            let entry = CachedEntry {
                value: v.value.clone(),
                version: v.version,
                expires_at: None,
            };
            self.cache.entry(key.to_owned()).or_insert(entry).await;
            if self.epoch(key).load(Ordering::SeqCst) != before {
                // A write of this stripe raced with the read: don't keep it.
                self.cache.invalidate(key).await;
            }
        }
        Ok(found)
    }

    pub(super) async fn put_through(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<Version> {
        let _key = self.lock(key).await;
        let expires_at = expiry(Instant::now(), ttl);
        let written = self.store.put(key, value.clone(), ttl).await;
        self.settle_write(key, written, value, expires_at).await
    }

    pub(super) async fn put_batch_through(&self, entries: Vec<PutEntry>) -> Result<Vec<Version>> {
        let _keys = self.lock_all(entries.iter().map(|e| e.key.as_str())).await;
        let now = Instant::now();
        let cached: Vec<_> = entries
            .iter()
            .map(|e| (e.key.clone(), e.value.clone(), expiry(now, e.ttl)))
            .collect();
        match self.store.put_batch(entries).await {
            Ok(versions) => {
                for ((key, value, expires_at), version) in cached.into_iter().zip(versions.iter().copied()) {
                    if self.config.is_uncached(&key) {
                        continue;
                    }
                    let entry = CachedEntry {
                        value,
                        version,
                        expires_at,
                    };
                    self.cache_put(&key, entry).await;
                }
                Ok(versions)
            }
            Err(e) => {
                for (key, _, _) in &cached {
                    self.cache_drop(key).await;
                }
                Err(e)
            }
        }
    }

    pub(super) async fn cas_through(
        &self,
        key: &str,
        expected: Expected,
        value: Bytes,
        ttl: Option<Duration>,
        timer: TimerChange,
    ) -> Result<Version> {
        let _key = self.lock(key).await;
        let expires_at = expiry(Instant::now(), ttl);
        let written = self
            .store
            .compare_and_swap_timed(key, expected, value.clone(), ttl, timer)
            .await;
        self.settle_write(key, written, value, expires_at).await
    }

    pub(super) async fn delete_through(&self, key: &str) -> Result<bool> {
        let _key = self.lock(key).await;
        let result = self.store.delete(key).await;
        self.cache_drop(key).await;
        result
    }
}
