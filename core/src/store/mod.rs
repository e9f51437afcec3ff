//! The state contract: [`StateStore`], the in-memory implementation
//! ([`MemoryStore`]) and the moka cache in front of any store
//! ([`CachedStore`]).
//!
//! Values are opaque bytes with a [`Version`]. Versions of a key strictly
//! increase with every write, also across a delete and re-create, so a
//! compare-and-swap against a version read before a delete can never succeed
//! by accident (no ABA).

pub mod cached;
pub mod memory;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

pub use cached::{CacheConfig, CacheStats, CachedStore, WriteMode};
pub use memory::{MemoryStore, MemoryStoreConfig};

use crate::error::Result;
use crate::scheduler::{Scheduler, TimerChange};

/// A value's version. Opaque except for ordering: later writes of one key
/// have greater versions. Stores never assign [`Version::PENDING`] (0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u64);

impl Version {
    /// Never a stored version: what a write-behind [`CachedStore`] returns for
    /// (and reports on) a write not yet flushed. A compare-and-swap expecting
    /// it always conflicts, so it can never overwrite a newer value.
    pub const PENDING: Version = Version(0);
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// A value with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The stored bytes.
    pub value: Bytes,
    /// The version that wrote them.
    pub version: Version,
}

/// What a compare-and-swap expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// The key must not exist (create-if-absent).
    Absent,
    /// The key must exist with exactly this version.
    Version(Version),
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Absent => f.write_str("absent"),
            Expected::Version(v) => v.fmt(f),
        }
    }
}

/// One write of a [`StateStore::put_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutEntry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Bytes,
    /// Expiry; `None` keeps the value until deleted.
    pub ttl: Option<Duration>,
}

impl PutEntry {
    /// A write of `value` at `key` with optional `ttl`.
    pub fn new(key: impl Into<String>, value: impl Into<Bytes>, ttl: Option<Duration>) -> Self {
        PutEntry {
            key: key.into(),
            value: value.into(),
            ttl,
        }
    }
}

/// One page of a [`StateStore::scan`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanPage {
    /// Keys and values of this page.
    pub entries: Vec<(String, Versioned)>,
    /// Pass to the next `scan` call to continue; `None` when done.
    pub cursor: Option<String>,
}

/// What a store supports; the conformance suite skips (visibly) the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreCapabilities {
    /// Backend name (`"memory"`, `"redis"`, …).
    pub name: &'static str,
    /// Per-key TTL is honoured.
    pub ttl: bool,
    /// Scan returns keys in ascending order, each exactly once.
    pub ordered_scan: bool,
    /// `put_batch` is one round trip.
    pub batch_put: bool,
    /// The version a write returns is the stored version: a later `get`
    /// reports it and a CAS expecting it succeeds. False only for stores
    /// that acknowledge writes before storing them (write-behind
    /// [`CachedStore`]), which return [`Version::PENDING`].
    pub exact_versions: bool,
    /// Largest value accepted, in bytes.
    pub max_value: usize,
}

impl StoreCapabilities {
    /// Everything supported, as by the in-memory store: a backend's
    /// starting point, which then turns off what it lacks (the struct is
    /// `non_exhaustive`, so other crates cannot build it literally).
    pub fn full(name: &'static str, max_value: usize) -> Self {
        StoreCapabilities {
            name,
            ttl: true,
            ordered_scan: true,
            batch_put: true,
            exact_versions: true,
            max_value,
        }
    }
}

/// Versioned key-value state. Object safe: share as `Arc<dyn StateStore>`.
///
/// Keys follow [`crate::validate::key`]; a bad key, a zero TTL or an
/// oversized value is a typed error naming it, never a panic.
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// What this backend supports.
    fn capabilities(&self) -> StoreCapabilities;

    /// Reads a key.
    ///
    /// # Behavior
    /// - A missing or expired key → `Ok(None)`.
    /// - Returns the latest acknowledged write (read-your-writes).
    async fn get(&self, key: &str) -> Result<Option<Versioned>>;

    /// Reads a key from the backing store itself, past any cache in front
    /// of it (for a store without one: [`get`](Self::get), the default).
    ///
    /// # Behavior
    /// - As [`get`](Self::get), and the answer reflects writes made through
    ///   other processes sharing the backend. Use it where a decision must
    ///   not rest on a stale read (the orchestrator does, before it drops a
    ///   result as stale).
    async fn get_fresh(&self, key: &str) -> Result<Option<Versioned>> {
        self.get(key).await
    }

    /// Writes a key unconditionally, returning the new version.
    ///
    /// # Behavior
    /// - `ttl: Some(d)` expires the value after `d`; `Some(0)` → `InvalidInput`.
    /// - The new version is greater than any earlier version of the key
    ///   (with `exact_versions`; otherwise [`Version::PENDING`]).
    async fn put(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<Version>;

    /// Writes many keys in one round trip where the backend allows it,
    /// returning their versions in order.
    ///
    /// # Behavior
    /// - Every entry is validated first; one bad entry fails the batch and
    ///   nothing is written.
    /// - Otherwise each entry behaves as [`put`](Self::put). Empty batch: no-op.
    async fn put_batch(&self, entries: Vec<PutEntry>) -> Result<Vec<Version>>;

    /// Deletes a key; returns whether it existed. Deleting twice is not an
    /// error (the second call returns `false`).
    async fn delete(&self, key: &str) -> Result<bool>;

    /// Writes `value` only if the key is as `expected`, atomically.
    ///
    /// # Behavior
    /// - Success → the new version.
    /// - Otherwise → `Conflict` with the context `expected` and `actual`
    ///   (a version, or `absent`); nothing is written.
    /// - Of concurrent CAS calls expecting the same state, exactly one wins.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Expected,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<Version>;

    /// The timers kept with this store's keys, which
    /// [`compare_and_swap_timed`](Self::compare_and_swap_timed) writes in the
    /// same atomic step as the state (see [`crate::scheduler`]). `None` (the
    /// default): this store keeps none.
    fn scheduler(&self) -> Option<Arc<dyn Scheduler>> {
        None
    }

    /// As [`compare_and_swap`](Self::compare_and_swap), and in the same
    /// atomic step applies `timer` to the key's timer in
    /// [`scheduler`](Self::scheduler).
    ///
    /// # Behavior
    /// - A conflict writes neither the value nor the timer.
    /// - A store without a scheduler accepts only [`TimerChange::Keep`]
    ///   (the default does exactly that); anything else → `Unsupported`.
    async fn compare_and_swap_timed(
        &self,
        key: &str,
        expected: Expected,
        value: Bytes,
        ttl: Option<Duration>,
        timer: TimerChange,
    ) -> Result<Version> {
        if timer != TimerChange::Keep {
            return Err(crate::Error::new(
                crate::ErrorKind::Unsupported,
                format!("the {} store keeps no timers", self.capabilities().name),
            )
            .with_operation("store.compare_and_swap_timed")
            .with_context("key", key));
        }
        self.compare_and_swap(key, expected, value, ttl).await
    }

    /// Lists keys starting with `prefix`, at most `limit` per page.
    ///
    /// # Behavior
    /// - Start with `cursor: None`; continue with the returned cursor until it
    ///   is `None`.
    /// - Every key present for the whole scan is returned at least once (with
    ///   `ordered_scan`: exactly once, in ascending order). Expired keys are
    ///   not returned.
    /// - `limit == 0` → `InvalidInput`; a page may hold fewer than `limit`
    ///   entries without being the last.
    async fn scan(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<ScanPage>;

    /// Releases what the store holds (connections, background tasks, and a
    /// cache's unflushed writes, which it writes first). Called once by the
    /// owner that opened it, after its last use. Calling it again is a
    /// no-op; the default does nothing.
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl<T: StateStore + ?Sized> StateStore for Arc<T> {
    fn capabilities(&self) -> StoreCapabilities {
        (**self).capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        (**self).get(key).await
    }
    async fn get_fresh(&self, key: &str) -> Result<Option<Versioned>> {
        (**self).get_fresh(key).await
    }
    async fn put(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<Version> {
        (**self).put(key, value, ttl).await
    }
    async fn put_batch(&self, entries: Vec<PutEntry>) -> Result<Vec<Version>> {
        (**self).put_batch(entries).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        (**self).delete(key).await
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Expected,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<Version> {
        (**self).compare_and_swap(key, expected, value, ttl).await
    }
    fn scheduler(&self) -> Option<Arc<dyn Scheduler>> {
        (**self).scheduler()
    }
    async fn compare_and_swap_timed(
        &self,
        key: &str,
        expected: Expected,
        value: Bytes,
        ttl: Option<Duration>,
        timer: TimerChange,
    ) -> Result<Version> {
        (**self)
            .compare_and_swap_timed(key, expected, value, ttl, timer)
            .await
    }
    async fn scan(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<ScanPage> {
        (**self).scan(prefix, cursor, limit).await
    }
    async fn close(&self) -> Result<()> {
        (**self).close().await
    }
}

/// The `Conflict` error every store returns from a failed CAS.
pub fn conflict(key: &str, expected: Expected, actual: Option<Version>) -> crate::Error {
    let actual = actual.map_or_else(|| "absent".to_string(), |v| v.to_string());
    crate::Error::new(
        crate::ErrorKind::Conflict,
        format!("compare-and-swap on {key:?} expected {expected} but found {actual}"),
    )
    .with_operation("store.compare_and_swap")
    .with_context("key", key)
    .with_context("expected", expected)
    .with_context("actual", actual)
}
