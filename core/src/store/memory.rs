//! [`MemoryStore`]: the embedded, in-process [`StateStore`].
//!
//! Owns the sharded map, the store-wide version counter and TTL reclamation.
//!
//! * **Shards.** Keys are spread over `shards` ordered maps (`BTreeMap`) by
//!   an Fx hash of the key, each behind its own `RwLock`, so readers never
//!   block each other and writers only contend within one shard.
//! * **Versions.** One store-wide `AtomicU64` hands out versions, taken under
//!   the shard's write lock. A key's versions therefore strictly increase,
//!   also across a delete and re-create (no ABA).
//! * **TTL.** Expiry uses [`tokio::time::Instant`], so tests can pause and
//!   advance time. An expired entry is invisible at once to `get`, `scan` and
//!   `compare_and_swap` (where it counts as absent). Its memory is reclaimed
//!   lazily: every shard keeps a min-heap of `(expires_at, key)`; each write
//!   to a shard first pops the heap items that are due and removes the entry
//!   if its *current* expiry is really past (a rewritten key leaves a stale
//!   heap item, which is simply dropped). The heap is rebuilt when stale
//!   items outnumber live ones. [`MemoryStore::purge_expired`] reclaims every
//!   shard at once (e.g. from a periodic task) for shards that see no writes.
//!   An expiry too far in the future to represent is treated as "never".
//! * **Scan** is ordered and exactly-once: see [`StateStore::scan`] on
//!   [`MemoryStore`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rustc_hash::FxHasher;
use tokio::time::Instant;

use super::{Expected, PutEntry, ScanPage, StateStore, StoreCapabilities, Version, Versioned, conflict};
use crate::error::{Error, Result};
use crate::scheduler::{MemoryScheduler, Scheduler, TimerChange};
use crate::validate;

/// Settings of a [`MemoryStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryStoreConfig {
    /// Number of independently locked shards (default 16; 0 is taken as 1).
    pub shards: usize,
    /// Largest value accepted, in bytes (default 4 MiB).
    pub max_value: usize,
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        MemoryStoreConfig {
            shards: 16,
            max_value: crate::codec::DEFAULT_MAX_SIZE,
        }
    }
}

impl MemoryStoreConfig {
    /// Sets the number of shards (0 is taken as 1).
    #[must_use]
    pub fn with_shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }

    /// Sets the largest value accepted, in bytes.
    #[must_use]
    pub fn with_max_value(mut self, max_value: usize) -> Self {
        self.max_value = max_value;
        self
    }
}

#[derive(Debug)]
struct Entry {
    value: Bytes,
    version: u64,
    expires_at: Option<Instant>,
}

impl Entry {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }

    fn versioned(&self) -> Versioned {
        Versioned {
            value: self.value.clone(),
            version: Version(self.version),
        }
    }
}

#[derive(Default)]
struct Shard {
    map: BTreeMap<String, Entry>,
    /// Min-heap of `(expires_at, key)`; items may be stale (lazy deletion).
    expiry: BinaryHeap<Reverse<(Instant, String)>>,
}

impl Shard {
    fn live(&self, key: &str, now: Instant) -> Option<&Entry> {
        self.map.get(key).filter(|e| e.is_live(now))
    }

    /// Removes the entries whose current expiry is past; returns how many.
    fn reclaim(&mut self, now: Instant) -> usize {
        let mut removed = 0;
        while let Some(Reverse((at, _))) = self.expiry.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, key))) = self.expiry.pop() else {
                break;
            };
            if self.map.get(&key).is_some_and(|e| e.expires_at == Some(at)) {
                self.map.remove(&key);
                removed += 1;
            }
        }
        if self.expiry.len() > 2 * self.map.len() + 64 {
            self.expiry = self
                .map
                .iter()
                .filter_map(|(k, e)| e.expires_at.map(|at| Reverse((at, k.clone()))))
                .collect();
        }
        removed
    }

    fn write(&mut self, key: &str, value: Bytes, version: u64, expires_at: Option<Instant>) {
        if let Some(at) = expires_at {
            self.expiry.push(Reverse((at, key.to_owned())));
        }
        let entry = Entry {
            value,
            version,
            expires_at,
        };
        match self.map.get_mut(key) {
            Some(slot) => *slot = entry,
            None => {
                self.map.insert(key.to_owned(), entry);
            }
        }
    }
}

struct Inner {
    shards: Box<[RwLock<Shard>]>,
    last_version: AtomicU64,
    /// The timers of its keys (see [`crate::scheduler`]).
    timers: Arc<MemoryScheduler>,
    config: MemoryStoreConfig,
}

/// The in-memory [`StateStore`]: sharded ordered maps, one version counter,
/// TTL with lazy reclamation. See the [module docs](self) for the design.
///
/// `Clone` is cheap and shares the data, so two runtime instances in one
/// process can share one store.
///
/// ```
/// use multiagents_core::{Expected, MemoryStore, StateStore};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> multiagents_core::Result<()> {
/// let store = MemoryStore::new();
/// let v1 = store.compare_and_swap("tx:1", Expected::Absent, "a".into(), None).await?;
/// let v2 = store.compare_and_swap("tx:1", Expected::Version(v1), "b".into(), None).await?;
/// assert!(v2 > v1);
/// assert_eq!(store.get("tx:1").await?.map(|v| v.value), Some("b".into()));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("config", &self.inner.config)
            .field("entries", &self.len())
            .finish()
    }
}

fn invalid_input(err: Error, operation: &'static str) -> Error {
    err.with_operation(operation)
}

fn check_limit(limit: usize, operation: &'static str) -> Result<()> {
    validate::scan_limit(limit).map_err(|e| e.with_operation(operation))
}

fn expiry(now: Instant, ttl: Option<Duration>) -> Option<Instant> {
    ttl.and_then(|ttl| now.checked_add(ttl))
}

impl MemoryStore {
    /// A store with the default configuration.
    pub fn new() -> Self {
        MemoryStore::with_config(MemoryStoreConfig::default())
    }

    /// A store with `config`.
    pub fn with_config(config: MemoryStoreConfig) -> Self {
        let shards = (0..config.shards.max(1))
            .map(|_| RwLock::new(Shard::default()))
            .collect();
        MemoryStore {
            inner: Arc::new(Inner {
                shards,
                last_version: AtomicU64::new(0),
                timers: Arc::new(MemoryScheduler::new()),
                config,
            }),
        }
    }

    /// Entries held, including expired ones not yet reclaimed.
    pub fn len(&self) -> usize {
        (0..self.inner.shards.len()).map(|i| self.read(i).map.len()).sum()
    }

    /// Whether no entry is held (expired ones not yet reclaimed count).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reclaims the memory of every expired entry now; returns how many were
    /// removed. Writes do this for their own shard anyway.
    pub fn purge_expired(&self) -> usize {
        let now = Instant::now();
        (0..self.inner.shards.len())
            .map(|i| self.write(i).reclaim(now))
            .sum()
    }

    fn shard_of(&self, key: &str) -> usize {
        let mut hasher = FxHasher::default();
        key.hash(&mut hasher);
        // The remainder is below the shard count, so it fits in usize.
        (hasher.finish() % self.inner.shards.len() as u64) as usize
    }

    fn read(&self, shard: usize) -> RwLockReadGuard<'_, Shard> {
        // Nothing panics while holding a shard lock; tolerate poisoning anyway.
        self.inner.shards[shard]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, shard: usize) -> RwLockWriteGuard<'_, Shard> {
        self.inner.shards[shard]
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The next store-wide version; call under the shard's write lock.
    fn next_version(&self) -> u64 {
        self.inner.last_version.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn check_write(&self, key: &str, value: &Bytes, ttl: Option<Duration>, op: &'static str) -> Result<()> {
        validate::key(key).map_err(|e| invalid_input(e, op))?;
        validate::ttl(ttl).map_err(|e| invalid_input(e.with_context("key", key), op))?;
        validate::size("value", value.len(), self.inner.config.max_value)
            .map_err(|e| e.with_operation(op).with_context("key", key))
    }

    fn put_checked(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Version {
        let now = Instant::now();
        let mut shard = self.write(self.shard_of(key));
        shard.reclaim(now);
        let version = self.next_version();
        shard.write(key, value, version, expiry(now, ttl));
        Version(version)
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities {
            name: "memory",
            ttl: true,
            ordered_scan: true,
            batch_put: true,
            exact_versions: true,
            max_value: self.inner.config.max_value,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        validate::key(key).map_err(|e| invalid_input(e, "memory.get"))?;
        let now = Instant::now();
        Ok(self.read(self.shard_of(key)).live(key, now).map(Entry::versioned))
    }

    async fn put(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<Version> {
        self.check_write(key, &value, ttl, "memory.put")?;
        Ok(self.put_checked(key, value, ttl))
    }

    async fn put_batch(&self, entries: Vec<PutEntry>) -> Result<Vec<Version>> {
        for (i, e) in entries.iter().enumerate() {
            self.check_write(&e.key, &e.value, e.ttl, "memory.put_batch")
                .map_err(|err| err.with_context("index", i))?;
        }
        Ok(entries
            .into_iter()
            .map(|e| self.put_checked(&e.key, e.value, e.ttl))
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        validate::key(key).map_err(|e| invalid_input(e, "memory.delete"))?;
        let now = Instant::now();
        let mut shard = self.write(self.shard_of(key));
        shard.reclaim(now);
        self.inner.timers.apply(key, TimerChange::Clear);
        Ok(shard.map.remove(key).is_some_and(|e| e.is_live(now)))
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
        Some(self.inner.timers.clone())
    }

    /// The write and the timer change happen under the key's shard lock.
    async fn compare_and_swap_timed(
        &self,
        key: &str,
        expected: Expected,
        value: Bytes,
        ttl: Option<Duration>,
        timer: TimerChange,
    ) -> Result<Version> {
        self.check_write(key, &value, ttl, "memory.compare_and_swap")?;
        let now = Instant::now();
        let mut shard = self.write(self.shard_of(key));
        shard.reclaim(now);
        let actual = shard.live(key, now).map(|e| Version(e.version));
        let matches = match expected {
            Expected::Absent => actual.is_none(),
            Expected::Version(v) => actual == Some(v),
        };
        if !matches {
            return Err(conflict(key, expected, actual));
        }
        let version = self.next_version();
        shard.write(key, value, version, expiry(now, ttl));
        self.inner.timers.apply(key, timer);
        Ok(Version(version))
    }

    /// Ordered, exactly-once scan. Every shard contributes up to `limit`
    /// live keys after the cursor that start with `prefix`; the union is
    /// sorted and cut to `limit`. The cursor is opaque to callers (it is the
    /// last key returned) and is `Some` only when the page is full.
    async fn scan(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<ScanPage> {
        validate::prefix(prefix).map_err(|e| invalid_input(e, "memory.scan"))?;
        check_limit(limit, "memory.scan")?;
        let start = match cursor {
            Some(c) if c >= prefix => Bound::Excluded(c),
            _ => Bound::Included(prefix),
        };
        let now = Instant::now();
        let mut entries = Vec::new();
        for i in 0..self.inner.shards.len() {
            let shard = self.read(i);
            entries.extend(
                shard
                    .map
                    .range::<str, _>((start, Bound::Unbounded))
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .filter(|(_, e)| e.is_live(now))
                    .take(limit)
                    .map(|(k, e)| (k.clone(), e.versioned())),
            );
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        entries.truncate(limit);
        let cursor = if entries.len() == limit {
            entries.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        Ok(ScanPage { entries, cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    async fn scan_all(store: &MemoryStore, prefix: &str, limit: usize) -> Vec<String> {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.scan(prefix, cursor.as_deref(), limit).await.expect("scan");
            assert!(page.entries.len() <= limit);
            keys.extend(page.entries.into_iter().map(|(k, _)| k));
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => return keys,
            }
        }
    }

    #[tokio::test]
    async fn versions_increase_across_delete_and_recreate() {
        let store = MemoryStore::new();
        let v1 = store.put("k", b("a"), None).await.expect("put");
        let v2 = store.put("k", b("b"), None).await.expect("put");
        assert!(v2 > v1);
        assert!(store.delete("k").await.expect("delete"));
        assert!(!store.delete("k").await.expect("delete twice"));
        let v3 = store
            .compare_and_swap("k", Expected::Absent, b("c"), None)
            .await
            .expect("create");
        assert!(v3 > v2);
        // A version read before the delete can never match again.
        let err = store
            .compare_and_swap("k", Expected::Version(v2), b("d"), None)
            .await
            .expect_err("stale version");
        assert_eq!(err.kind(), ErrorKind::Conflict);
    }

    #[tokio::test]
    async fn cas_absent_stale_and_current() {
        let store = MemoryStore::new();
        let v1 = store
            .compare_and_swap("k", Expected::Absent, b("a"), None)
            .await
            .expect("absent");
        let err = store
            .compare_and_swap("k", Expected::Absent, b("x"), None)
            .await
            .expect_err("exists");
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert_eq!(err.context_value("actual"), Some(v1.to_string().as_str()));
        let v2 = store
            .compare_and_swap("k", Expected::Version(v1), b("b"), None)
            .await
            .expect("current");
        let err = store
            .compare_and_swap("k", Expected::Version(v1), b("x"), None)
            .await
            .expect_err("stale");
        assert_eq!(err.context_value("expected"), Some(v1.to_string().as_str()));
        let got = store.get("k").await.expect("get").expect("present");
        assert_eq!((got.value, got.version), (b("b"), v2));
        let err = store
            .compare_and_swap("missing", Expected::Version(v1), b("x"), None)
            .await
            .expect_err("absent key");
        assert_eq!(err.context_value("actual"), Some("absent"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_cas_has_exactly_one_winner() {
        let store = MemoryStore::new();
        let v0 = store.put("k", b("0"), None).await.expect("put");
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .compare_and_swap("k", Expected::Version(v0), b(&i.to_string()), None)
                        .await
                })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            match t.await.expect("join") {
                Ok(_) => wins += 1,
                Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict),
            }
        }
        assert_eq!(wins, 1);
    }

    #[tokio::test]
    async fn ttl_expires_and_memory_is_reclaimed() {
        tokio::time::pause();
        let store = MemoryStore::with_config(MemoryStoreConfig::default().with_shards(1));
        store
            .put("short", b("a"), Some(Duration::from_secs(1)))
            .await
            .expect("put");
        store
            .put("long", b("b"), Some(Duration::from_secs(10)))
            .await
            .expect("put");
        store.put("forever", b("c"), None).await.expect("put");
        assert!(store.get("short").await.expect("get").is_some());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(store.get("short").await.expect("get").is_none());
        // CAS on an expired key behaves as absent.
        store
            .compare_and_swap(
                "short",
                Expected::Absent,
                b("again"),
                Some(Duration::from_secs(1)),
            )
            .await
            .expect("expired counts as absent");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(store.len(), 3, "not reclaimed before a write");
        store.put("other", b("d"), None).await.expect("write reclaims");
        assert_eq!(store.len(), 3, "short reclaimed, other added");
        assert!(!store.delete("short").await.expect("delete expired"));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(store.purge_expired(), 1);
        assert_eq!(store.len(), 2);
        assert_eq!(scan_all(&store, "", 10).await, ["forever", "other"]);
    }

    #[tokio::test]
    async fn rewritten_key_keeps_its_new_expiry() {
        tokio::time::pause();
        let store = MemoryStore::with_config(MemoryStoreConfig::default().with_shards(1));
        store
            .put("k", b("a"), Some(Duration::from_secs(1)))
            .await
            .expect("put");
        store
            .put("k", b("b"), Some(Duration::from_secs(5)))
            .await
            .expect("put");
        tokio::time::advance(Duration::from_secs(2)).await;
        store
            .put("x", b("x"), None)
            .await
            .expect("write reclaims stale heap item");
        assert_eq!(store.get("k").await.expect("get").map(|v| v.value), Some(b("b")));
    }

    #[tokio::test]
    async fn scan_is_ordered_paged_exactly_once_and_skips_expired() {
        tokio::time::pause();
        let store = MemoryStore::with_config(MemoryStoreConfig::default().with_shards(7));
        let mut want = Vec::new();
        for i in 0..100 {
            let key = format!("p/{i:03}");
            store.put(&key, b("v"), None).await.expect("put");
            want.push(key);
        }
        for i in 0..10 {
            store
                .put(&format!("p/x{i}"), b("v"), Some(Duration::from_secs(1)))
                .await
                .expect("put");
            store.put(&format!("q/{i}"), b("v"), None).await.expect("put");
        }
        store.put("o", b("v"), None).await.expect("put");
        tokio::time::advance(Duration::from_secs(2)).await;
        for limit in [1, 3, 10, 100, 1000] {
            assert_eq!(scan_all(&store, "p/", limit).await, want, "limit {limit}");
        }
        let page = store.scan("p/", None, 100).await.expect("scan");
        assert_eq!(page.cursor.as_deref(), Some("p/099"));
        assert!(
            store
                .scan("p/", Some("p/099"), 100)
                .await
                .expect("scan")
                .entries
                .is_empty()
        );
        let page = store
            .scan("q/", Some("a"), 3)
            .await
            .expect("cursor before prefix");
        assert_eq!(page.entries[0].0, "q/0");
        assert_eq!(scan_all(&store, "", 7).await.len(), 111);
    }

    #[tokio::test]
    async fn bad_input_is_a_typed_error_naming_the_value() {
        let store = MemoryStore::with_config(MemoryStoreConfig::default().with_max_value(8));
        let err = store.get("bad\nkey").await.expect_err("control char");
        assert_eq!(
            (err.kind(), err.operation()),
            (ErrorKind::InvalidInput, "memory.get")
        );
        assert!(err.to_string().contains("bad\\nkey"), "{err}");
        let err = store.put("", b("v"), None).await.expect_err("empty key");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let err = store
            .put("k", b("v"), Some(Duration::ZERO))
            .await
            .expect_err("zero ttl");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.context_value("ttl"), Some("0ns"));
        let err = store.put("k", b("123456789"), None).await.expect_err("too large");
        assert_eq!(
            (err.kind(), err.context_value("size")),
            (ErrorKind::TooLarge, Some("9"))
        );
        assert_eq!(err.context_value("key"), Some("k"));
        let err = store
            .compare_and_swap("k", Expected::Absent, b("123456789"), None)
            .await
            .expect_err("too large");
        assert_eq!(err.operation(), "memory.compare_and_swap");
        let err = store.scan("", None, 0).await.expect_err("limit 0");
        assert_eq!(
            (err.kind(), err.context_value("limit")),
            (ErrorKind::InvalidInput, Some("0"))
        );
        assert!(store.scan("a\u{0}", None, 1).await.is_err());
        assert!(store.delete(&"k".repeat(2000)).await.is_err());
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn put_batch_validates_everything_before_writing() {
        let store = MemoryStore::new();
        let err = store
            .put_batch(vec![
                PutEntry::new("a", b("1"), None),
                PutEntry::new("b", b("2"), Some(Duration::ZERO)),
            ])
            .await
            .expect_err("bad ttl");
        assert_eq!(
            (err.kind(), err.context_value("index")),
            (ErrorKind::InvalidInput, Some("1"))
        );
        assert!(store.get("a").await.expect("get").is_none(), "nothing written");
        assert!(store.put_batch(Vec::new()).await.expect("empty").is_empty());
        let versions = store
            .put_batch(vec![
                PutEntry::new("a", b("1"), None),
                PutEntry::new("a", b("2"), None),
            ])
            .await
            .expect("batch");
        assert!(versions[1] > versions[0]);
        assert_eq!(
            store.get("a").await.expect("get").map(|v| v.version),
            Some(versions[1])
        );
    }

    #[tokio::test]
    async fn clones_share_data_and_capabilities_report_config() {
        let a = MemoryStore::with_config(MemoryStoreConfig::default().with_max_value(100).with_shards(0));
        let b2 = a.clone();
        a.put("k", b("v"), None).await.expect("put");
        assert!(b2.get("k").await.expect("get").is_some());
        let caps = b2.capabilities();
        assert_eq!(
            (caps.name, caps.max_value, caps.ordered_scan),
            ("memory", 100, true)
        );
    }
}
