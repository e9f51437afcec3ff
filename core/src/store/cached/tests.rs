//! Tests of [`CachedStore`]: read-through, expiry, CAS, eviction and
//! write-behind (with a store that refuses its first batches).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::*;
use crate::error::{Error, ErrorKind};
use crate::store::{MemoryStore, PutEntry};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// A real [`StateStore`] (a [`MemoryStore`]) whose first `fail` batches are
/// refused as `Unavailable`, which records every batch size, and which can
/// yield to the scheduler around each call (so that races get a chance).
#[derive(Default)]
struct Flaky {
    store: MemoryStore,
    fail: AtomicUsize,
    batches: std::sync::Mutex<Vec<usize>>,
    jitter: bool,
    calls: AtomicUsize,
}

impl Flaky {
    fn failing(n: usize) -> Arc<Self> {
        let flaky = Flaky::default();
        flaky.fail.store(n, Ordering::SeqCst);
        Arc::new(flaky)
    }

    fn jittery() -> Arc<Self> {
        Arc::new(Flaky {
            jitter: true,
            ..Flaky::default()
        })
    }

    async fn jitter(&self) {
        if self.jitter {
            for _ in 0..self.calls.fetch_add(1, Ordering::Relaxed) % 5 {
                tokio::task::yield_now().await;
            }
        }
    }

    fn batches(&self) -> Vec<usize> {
        self.batches.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl StateStore for Flaky {
    fn capabilities(&self) -> StoreCapabilities {
        self.store.capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        self.jitter().await;
        let got = self.store.get(key).await;
        self.jitter().await;
        got
    }
    async fn put(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<Version> {
        self.jitter().await;
        let version = self.store.put(key, value, ttl).await;
        self.jitter().await;
        version
    }
    async fn put_batch(&self, entries: Vec<PutEntry>) -> Result<Vec<Version>> {
        let refuse = self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refuse {
            return Err(Error::new(ErrorKind::Unavailable, "store down"));
        }
        if let Ok(mut batches) = self.batches.lock() {
            batches.push(entries.len());
        }
        self.jitter().await;
        let versions = self.store.put_batch(entries).await;
        self.jitter().await;
        versions
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.jitter().await;
        let existed = self.store.delete(key).await;
        self.jitter().await;
        existed
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Expected,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<Version> {
        self.jitter().await;
        let version = self.store.compare_and_swap(key, expected, value, ttl).await;
        self.jitter().await;
        version
    }
    async fn scan(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<ScanPage> {
        self.store.scan(prefix, cursor, limit).await
    }
}

fn behind(interval_ms: u64, max_batch: usize) -> CacheConfig {
    CacheConfig::default().with_write_mode(WriteMode::WriteBehind {
        interval: Duration::from_millis(interval_ms),
        max_batch,
    })
}

async fn value_of(store: &impl StateStore, key: &str) -> Option<Bytes> {
    store.get(key).await.expect("get").map(|v| v.value)
}

#[tokio::test]
async fn read_through_counts_hits_and_misses() {
    let cached = CachedStore::new(MemoryStore::new(), CacheConfig::default()).expect("new");
    assert_eq!(cached.stats().hit_rate(), 0.0);
    cached.inner().put("k", b("v"), None).await.expect("put");
    assert_eq!(value_of(&cached, "k").await, Some(b("v")), "read through");
    assert_eq!(value_of(&cached, "k").await, Some(b("v")), "cached");
    assert_eq!(value_of(&cached, "none").await, None);
    assert_eq!(value_of(&cached, "none").await, None, "absence is not cached");
    cached.shared.cache.run_pending_tasks().await;
    let s = cached.stats();
    assert_eq!((s.hits, s.misses, s.hit_rate()), (1, 3, 0.25));
    assert_eq!(s.cached_entries, 1);
    let err = cached.get("").await.expect_err("bad key");
    assert_eq!(
        (err.kind(), err.operation()),
        (ErrorKind::InvalidInput, "cached.get")
    );
}

#[tokio::test]
async fn a_value_is_never_served_past_its_ttl() {
    tokio::time::pause();
    let cached = CachedStore::new(MemoryStore::new(), CacheConfig::default()).expect("new");
    cached
        .put("k", b("v"), Some(Duration::from_secs(1)))
        .await
        .expect("put");
    assert_eq!(value_of(&cached, "k").await, Some(b("v")));
    assert_eq!(cached.stats().hits, 1);
    tokio::time::advance(Duration::from_millis(1001)).await;
    assert_eq!(value_of(&cached, "k").await, None);
    assert_eq!(
        cached.stats().misses,
        0,
        "the expired entry answered, not the store"
    );
}

/// The store's expiry starts a store call later than the cache's: a read in
/// between must not cache the old value with no expiry (it was then served
/// for the cache's whole lifetime, minutes past its TTL).
#[tokio::test]
async fn a_store_expiring_later_than_the_cache_does_not_revive_the_value() {
    tokio::time::pause();
    let cached = CachedStore::new(MemoryStore::new(), CacheConfig::default()).expect("new");
    cached
        .put("k", b("v"), Some(Duration::from_secs(1)))
        .await
        .expect("put");
    // The store ends up keeping the value longer, as a slow store call would.
    cached
        .inner()
        .put("k", b("v"), Some(Duration::from_secs(2)))
        .await
        .expect("inner put");
    tokio::time::advance(Duration::from_millis(1001)).await;
    for read in 0..3 {
        assert_eq!(value_of(&cached, "k").await, None, "read {read} after the TTL");
    }
}

#[tokio::test]
async fn cas_updates_the_cache_and_a_conflict_invalidates_it() {
    let cached = CachedStore::new(MemoryStore::new(), CacheConfig::default()).expect("new");
    let v1 = cached.put("k", b("a"), None).await.expect("put");
    let v2 = cached
        .compare_and_swap("k", Expected::Version(v1), b("b"), None)
        .await
        .expect("cas");
    let got = cached.get("k").await.expect("get").expect("some");
    assert_eq!((got.value, got.version, cached.stats().misses), (b("b"), v2, 0));
    // Another instance writes behind our cache's back: we serve the stale value...
    let theirs = cached.inner().put("k", b("theirs"), None).await.expect("put");
    assert_eq!(value_of(&cached, "k").await, Some(b("b")));
    // ...until a CAS fails against the store, which invalidates the entry.
    let err = cached
        .compare_and_swap("k", Expected::Version(v2), b("c"), None)
        .await
        .expect_err("conflict");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let got = cached.get("k").await.expect("get").expect("some");
    assert_eq!((got.value, got.version), (b("theirs"), theirs));
    assert_eq!(cached.stats().misses, 1);
}

#[tokio::test]
async fn capacity_is_weighed_in_bytes_and_evictions_counted() {
    let config = CacheConfig::default().with_max_capacity_bytes(8 * 1024);
    let cached = CachedStore::new(MemoryStore::new(), config).expect("new");
    let value = Bytes::from(vec![7u8; 1024]);
    for i in 0..64 {
        cached
            .put(&format!("k{i}"), value.clone(), None)
            .await
            .expect("put");
    }
    cached.shared.cache.run_pending_tasks().await;
    let s = cached.stats();
    assert!(s.evictions >= 50, "{s:?}");
    assert!(s.cached_bytes <= 8 * 1024, "{s:?}");
    for i in 0..64 {
        assert_eq!(value_of(&cached, &format!("k{i}")).await, Some(value.clone()));
    }
    // Explicit invalidations are not evictions.
    let before = cached.stats().evictions;
    cached.delete("k0").await.expect("delete");
    cached.shared.cache.run_pending_tasks().await;
    assert!(cached.stats().evictions >= before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_leave_cache_and_store_agreeing() {
    let cached = CachedStore::new(Flaky::jittery(), CacheConfig::default()).expect("new");
    for round in 0..200usize {
        let tasks: Vec<_> = (0..8usize)
            .map(|t| {
                let cached = cached.clone();
                tokio::spawn(async move {
                    let value = b(&format!("{round}/{t}"));
                    match (t + round) % 4 {
                        0 => {
                            cached.delete("k").await.expect("delete");
                        }
                        1 => {
                            cached.get("k").await.expect("get");
                        }
                        2 => {
                            cached
                                .put_batch(vec![PutEntry::new("k", value, None)])
                                .await
                                .expect("batch");
                        }
                        _ => {
                            cached.put("k", value, None).await.expect("put");
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("join");
        }
        let seen = cached.get("k").await.expect("get");
        assert_eq!(seen, cached.inner().get("k").await.expect("get"), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_racing_a_delete_never_resurrect_the_value() {
    let cached = CachedStore::new(Flaky::jittery(), CacheConfig::default()).expect("new");
    for round in 0..200 {
        cached
            .inner()
            .put("k", b(&round.to_string()), None)
            .await
            .expect("put");
        let tasks: Vec<_> = (0..6)
            .map(|t| {
                let cached = cached.clone();
                tokio::spawn(async move {
                    if t == 0 {
                        cached.delete("k").await.map(|_| ())
                    } else {
                        cached.get("k").await.map(|_| ())
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("join").expect("op");
        }
        assert_eq!(cached.get("k").await.expect("get"), None, "round {round}");
    }
}

#[tokio::test]
async fn write_behind_queues_until_flushed_and_serves_reads_meanwhile() {
    tokio::time::pause();
    let store = MemoryStore::new();
    let cached = CachedStore::new(store.clone(), behind(3_600_000, 512)).expect("new");
    let provisional = cached.put("a", b("1"), None).await.expect("put");
    cached.put("a", b("2"), None).await.expect("put again");
    cached
        .put_batch(vec![PutEntry::new("b", b("3"), None)])
        .await
        .expect("batch");
    assert_eq!(value_of(&store, "a").await, None, "not in the store yet");
    assert_eq!(
        value_of(&cached, "a").await,
        Some(b("2")),
        "visible through the cache"
    );
    assert_eq!(cached.stats().pending_writes, 2);
    assert_eq!(provisional, Version::PENDING);
    assert_eq!(
        cached.get("a").await.expect("get").map(|v| v.version),
        Some(Version::PENDING)
    );
    assert!(!cached.capabilities().exact_versions);
    // A CAS against the pending version can never overwrite anything.
    let err = cached
        .compare_and_swap("a", Expected::Version(provisional), b("x"), None)
        .await
        .expect_err("pending is never a stored version");
    assert_eq!(err.kind(), crate::ErrorKind::Conflict);
    cached.flush().await.expect("flush");
    assert_eq!(value_of(&store, "a").await, Some(b("2")));
    assert_eq!(value_of(&store, "b").await, Some(b("3")));
    let s = cached.stats();
    assert_eq!(
        (s.pending_writes, s.batches_written, s.entries_written),
        (0, 1, 2)
    );
    // After the flush the cache holds the store's real version.
    assert_eq!(
        cached.get("a").await.expect("get"),
        store.get("a").await.expect("get")
    );
}

#[tokio::test]
async fn write_behind_flushes_in_batches_of_at_most_max_batch() {
    tokio::time::pause();
    let flaky = Flaky::failing(0);
    let cached = CachedStore::new(flaky.clone(), behind(3_600_000, 4)).expect("new");
    let entries = (0..10)
        .map(|i| PutEntry::new(format!("k{i}"), b("v"), None))
        .collect();
    cached.put_batch(entries).await.expect("batch");
    // A full queue wakes the flusher at once, long before the interval.
    tokio::time::sleep(Duration::from_millis(1)).await;
    let mut sizes = flaky.batches();
    sizes.sort_unstable();
    assert_eq!(sizes, [2, 4, 4]);
    let s = cached.stats();
    assert_eq!(
        (s.batches_written, s.entries_written, s.pending_writes),
        (3, 10, 0)
    );
    assert!((s.mean_batch_size() - 10.0 / 3.0).abs() < 1e-9);
    assert_eq!(flaky.store.len(), 10);
}

#[tokio::test]
async fn write_behind_flushes_on_shutdown_then_writes_through() {
    tokio::time::pause();
    let store = MemoryStore::new();
    let cached = CachedStore::new(store.clone(), behind(3_600_000, 512)).expect("new");
    cached.put("a", b("1"), None).await.expect("put");
    cached.shutdown().await.expect("shutdown");
    assert_eq!(value_of(&store, "a").await, Some(b("1")));
    cached.put("b", b("2"), None).await.expect("put after shutdown");
    assert_eq!(value_of(&store, "b").await, Some(b("2")), "written through");
    cached.shutdown().await.expect("second shutdown is harmless");
}

#[tokio::test]
async fn write_behind_flushes_when_the_last_handle_is_dropped() {
    tokio::time::pause();
    let store = MemoryStore::new();
    let cached = CachedStore::new(store.clone(), behind(3_600_000, 512)).expect("new");
    let clone = cached.clone();
    cached.put("a", b("1"), None).await.expect("put");
    drop(cached);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(value_of(&store, "a").await, None, "a handle is still alive");
    drop(clone);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(value_of(&store, "a").await, Some(b("1")));
}

#[tokio::test]
async fn a_refused_flush_is_retried_and_newer_writes_win() {
    tokio::time::pause();
    let flaky = Flaky::failing(2);
    let cached = CachedStore::new(flaky.clone(), behind(100, 512)).expect("new");
    cached
        .put("k", b("old"), Some(Duration::from_secs(60)))
        .await
        .expect("put");
    tokio::time::sleep(Duration::from_millis(150)).await; // tick at 100 ms: refused
    assert_eq!(cached.stats().flush_errors, 1);
    cached.put("k", b("new"), None).await.expect("put");
    assert_eq!(value_of(&cached, "k").await, Some(b("new")));
    tokio::time::sleep(Duration::from_millis(100)).await; // 200 ms: refused
    assert_eq!(value_of(&flaky.store, "k").await, None);
    tokio::time::sleep(Duration::from_millis(100)).await; // 300 ms: written
    let s = cached.stats();
    assert_eq!((s.flush_errors, s.pending_writes, s.batches_written), (2, 0, 1));
    assert_eq!(value_of(&flaky.store, "k").await, Some(b("new")));
}

#[tokio::test]
async fn flush_reports_a_refusal_and_keeps_the_writes() {
    tokio::time::pause();
    let flaky = Flaky::failing(1);
    let cached = CachedStore::new(flaky.clone(), behind(3_600_000, 512)).expect("new");
    cached.put("k", b("v"), None).await.expect("put");
    let err = cached.flush().await.expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(cached.stats().pending_writes, 1);
    cached.flush().await.expect("accepted");
    assert_eq!(value_of(&flaky.store, "k").await, Some(b("v")));
}

#[tokio::test]
async fn write_behind_delete_cas_and_scan_see_queued_writes() {
    tokio::time::pause();
    let store = MemoryStore::new();
    let cached = CachedStore::new(store.clone(), behind(3_600_000, 512)).expect("new");
    cached.put("p/gone", b("x"), None).await.expect("put");
    assert!(
        cached.delete("p/gone").await.expect("delete"),
        "a queued write existed"
    );
    assert_eq!(value_of(&cached, "p/gone").await, None);
    cached.put("p/a", b("1"), None).await.expect("put");
    let page = cached.scan("p/", None, 10).await.expect("scan flushes first");
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].0, "p/a");
    cached.put("p/a", b("2"), None).await.expect("put");
    let err = cached
        .compare_and_swap("p/a", Expected::Absent, b("3"), None)
        .await
        .expect_err("the flushed write exists");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let current = store.get("p/a").await.expect("get").expect("flushed");
    assert_eq!(current.value, b("2"));
    cached
        .compare_and_swap("p/a", Expected::Version(current.version), b("3"), None)
        .await
        .expect("cas with the store's version");
    assert_eq!(value_of(&cached, "p/a").await, Some(b("3")));
    assert_eq!(
        value_of(&store, "p/gone").await,
        None,
        "the deleted write never landed"
    );
}

#[tokio::test]
async fn a_queued_write_whose_ttl_ran_out_is_flushed_as_a_delete() {
    tokio::time::pause();
    let store = MemoryStore::new();
    store.put("k", b("stored"), None).await.expect("put");
    let cached = CachedStore::new(store.clone(), behind(3_600_000, 512)).expect("new");
    cached
        .put("k", b("queued"), Some(Duration::from_secs(1)))
        .await
        .expect("put");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(value_of(&cached, "k").await, None);
    cached.flush().await.expect("flush");
    assert_eq!(value_of(&store, "k").await, None);
    assert_eq!(cached.stats().pending_writes, 0);
}

#[test]
fn write_behind_needs_a_runtime_and_bad_settings_are_refused() {
    let err = CachedStore::new(MemoryStore::new(), behind(100, 10)).expect_err("no runtime");
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(CachedStore::new(MemoryStore::new(), CacheConfig::default()).is_ok());
    let zero_ttl = CacheConfig::default().with_ttl(Some(Duration::ZERO));
    let err = CachedStore::new(MemoryStore::new(), zero_ttl).expect_err("zero ttl");
    assert_eq!(
        (err.kind(), err.context_value("setting")),
        (ErrorKind::Config, Some("ttl"))
    );
    let err = CachedStore::new(MemoryStore::new(), behind(100, 0)).expect_err("zero batch");
    assert_eq!(err.context_value("setting"), Some("max_batch"));
}

#[tokio::test]
async fn writes_are_validated_before_anything_is_queued_or_written() {
    let cached = CachedStore::new(MemoryStore::new(), behind(3_600_000, 512)).expect("new");
    let err = cached
        .put_batch(vec![
            PutEntry::new("a", b("1"), None),
            PutEntry::new(
                "b",
                Bytes::from(vec![0u8; crate::codec::DEFAULT_MAX_SIZE + 1]),
                None,
            ),
        ])
        .await
        .expect_err("too large");
    assert_eq!(
        (err.kind(), err.context_value("key")),
        (ErrorKind::TooLarge, Some("b"))
    );
    assert_eq!(cached.stats().pending_writes, 0);
    let err = cached
        .put("k", b("v"), Some(Duration::ZERO))
        .await
        .expect_err("zero ttl");
    assert_eq!(
        (err.kind(), err.operation()),
        (ErrorKind::InvalidInput, "cached.put")
    );
}
