//! [`CacheStats`]: the counters of a [`CachedStore`](super::CachedStore).
//!
//! Owns the atomic counters updated on the hot path (`Counters`) and the
//! plain snapshot handed to callers ([`CacheStats`]).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a [`CachedStore`](super::CachedStore)'s counters, from
/// [`CachedStore::stats`](super::CachedStore::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Reads answered by the cache (or by a pending write-behind write).
    pub hits: u64,
    /// Reads that went to the store.
    pub misses: u64,
    /// Entries the cache dropped for size or expiry (not explicit
    /// invalidations or replacements).
    pub evictions: u64,
    /// `put_batch` calls made by the write-behind flusher that succeeded.
    pub batches_written: u64,
    /// Entries written by those batches.
    pub entries_written: u64,
    /// Write-behind flushes the store refused (the writes stayed pending).
    pub flush_errors: u64,
    /// Write-behind writes acknowledged but not yet in the store.
    pub pending_writes: u64,
    /// Entries currently cached (approximate, as moka reports it).
    pub cached_entries: u64,
    /// Weight of the cached entries in bytes (approximate).
    pub cached_bytes: u64,
}

impl CacheStats {
    /// `hits / (hits + misses)`, or `0.0` before any lookup.
    pub fn hit_rate(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            self.hits as f64 / lookups as f64
        }
    }

    /// Mean number of entries per written batch, or `0.0` before any batch.
    pub fn mean_batch_size(&self) -> f64 {
        if self.batches_written == 0 {
            0.0
        } else {
            self.entries_written as f64 / self.batches_written as f64
        }
    }
}

/// The live counters behind [`CacheStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) batches_written: AtomicU64,
    pub(crate) entries_written: AtomicU64,
    pub(crate) flush_errors: AtomicU64,
}

impl Counters {
    /// Adds one to `counter`.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The snapshot, completed with the gauges the caller measured.
    pub(crate) fn snapshot(&self, pending_writes: u64, cached_entries: u64, cached_bytes: u64) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            batches_written: self.batches_written.load(Ordering::Relaxed),
            entries_written: self.entries_written.load(Ordering::Relaxed),
            flush_errors: self.flush_errors.load(Ordering::Relaxed),
            pending_writes,
            cached_entries,
            cached_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_zero_without_data_and_exact_with_it() {
        let empty = CacheStats::default();
        assert_eq!((empty.hit_rate(), empty.mean_batch_size()), (0.0, 0.0));
        let c = Counters::default();
        for _ in 0..3 {
            Counters::bump(&c.hits);
        }
        Counters::bump(&c.misses);
        c.batches_written.store(4, Ordering::Relaxed);
        c.entries_written.store(10, Ordering::Relaxed);
        let s = c.snapshot(2, 5, 100);
        assert_eq!(s.hit_rate(), 0.75);
        assert_eq!(s.mean_batch_size(), 2.5);
        assert_eq!((s.pending_writes, s.cached_entries, s.cached_bytes), (2, 5, 100));
    }
}
