//! [`CacheConfig`] and [`WriteMode`]: how a [`CachedStore`](super::CachedStore)
//! caches and writes, and the checks run on them at construction.

use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

/// Longest cache lifetime accepted (moka refuses more than 1000 years).
const MAX_LIFETIME: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How a [`CachedStore`](super::CachedStore) writes to its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WriteMode {
    /// Every write goes to the store before it is acknowledged, then updates
    /// the cache. Nothing acknowledged is lost. The default.
    #[default]
    WriteThrough,
    /// `put`/`put_batch` are acknowledged once cached and queued; a
    /// background task writes them to the store in batches. Writes
    /// acknowledged but not yet flushed are lost if the process dies within
    /// `interval` (or while the store refuses them). Opt-in.
    WriteBehind {
        /// How often pending writes are flushed (default 100 ms).
        interval: Duration,
        /// Largest `put_batch`; reaching it also triggers a flush at once
        /// (default 512).
        max_batch: usize,
    },
}

impl WriteMode {
    /// Write-behind with the defaults: every 100 ms, batches of ≤ 512.
    pub fn write_behind() -> Self {
        WriteMode::WriteBehind {
            interval: Duration::from_millis(100),
            max_batch: 512,
        }
    }
}

/// Settings of a [`CachedStore`](super::CachedStore).
///
/// ```
/// use std::time::Duration;
/// use multiagents_core::{CacheConfig, WriteMode};
/// let config = CacheConfig::default()
///     .with_max_capacity_bytes(16 << 20)
///     .with_ttl(Some(Duration::from_secs(30)))
///     .with_write_mode(WriteMode::write_behind());
/// assert_eq!(config.tti, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Cache capacity in bytes, weighed as key + value + ~64 bytes of
    /// overhead per entry (default 64 MiB).
    pub max_capacity_bytes: u64,
    /// How long an entry stays cached after it was written or read through
    /// (default 5 min). This bounds how stale a value changed by *another*
    /// instance can be.
    pub ttl: Option<Duration>,
    /// Drop an entry not read for this long (default none).
    pub tti: Option<Duration>,
    /// Write-through (default) or write-behind.
    pub write_mode: WriteMode,
    /// Key prefixes the cache leaves alone: their reads and writes go to
    /// the store directly, never cached or written behind (default none).
    /// The runtime puts the orchestrator's transaction states here: it
    /// keeps the last state it wrote decoded, so a cached copy only cost
    /// every state change a cache update (BENCHMARKS.md, 2026-12-06).
    pub uncached: Vec<String>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_capacity_bytes: 64 << 20,
            ttl: Some(Duration::from_secs(300)),
            tti: None,
            write_mode: WriteMode::WriteThrough,
            uncached: Vec::new(),
        }
    }
}

impl CacheConfig {
    /// Sets the capacity in bytes.
    #[must_use]
    pub fn with_max_capacity_bytes(mut self, bytes: u64) -> Self {
        self.max_capacity_bytes = bytes;
        self
    }

    /// Sets the time-to-live of cache entries (`None`: only capacity and the
    /// values' own TTL evict).
    #[must_use]
    pub fn with_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the time-to-idle of cache entries.
    #[must_use]
    pub fn with_tti(mut self, tti: Option<Duration>) -> Self {
        self.tti = tti;
        self
    }

    /// Sets the write mode.
    #[must_use]
    pub fn with_write_mode(mut self, write_mode: WriteMode) -> Self {
        self.write_mode = write_mode;
        self
    }

    /// Leaves keys starting with `prefix` out of the cache (see
    /// [`uncached`](Self::uncached)).
    #[must_use]
    pub fn with_uncached_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.uncached.push(prefix.into());
        self
    }

    /// Whether `key` is left out of the cache.
    pub(super) fn is_uncached(&self, key: &str) -> bool {
        self.uncached.iter().any(|p| key.starts_with(p.as_str()))
    }

    /// Rejects settings that cannot work, naming the setting.
    pub(super) fn check(&self) -> Result<()> {
        let bad = |setting: &'static str, value: String, why: &str| {
            Err(Error::new(ErrorKind::Config, format!("cache {setting} {why}"))
                .with_operation("cached.new")
                .with_context("setting", setting)
                .with_context("value", value))
        };
        for (setting, value) in [("ttl", self.ttl), ("tti", self.tti)] {
            match value {
                Some(d) if d.is_zero() => return bad(setting, format!("{d:?}"), "must be positive"),
                Some(d) if d > MAX_LIFETIME => return bad(setting, format!("{d:?}"), "exceeds 100 years"),
                _ => {}
            }
        }
        if self.uncached.iter().any(String::is_empty) {
            return bad(
                "uncached",
                "\"\"".into(),
                "holds an empty prefix, which would leave every key out: use no cache instead",
            );
        }
        if let WriteMode::WriteBehind { interval, max_batch } = self.write_mode {
            if interval.is_zero() {
                return bad("interval", format!("{interval:?}"), "must be positive");
            }
            if max_batch == 0 {
                return bad("max_batch", max_batch.to_string(), "must be positive");
            }
        }
        Ok(())
    }
}
