//! [`RedisStore`]: the [`StateStore`] on Redis strings (a version header
//! and the value, `stored.rs`) under `<key_prefix>:k:`, versions in blocks from one
//! counter per prefix (`keys.rs`), writes and compare-and-swap by Lua scripts, TTL by `SET … PX` or `PEXPIRE`,
//! prefix scans in key order from an index (a sorted set of the keys),
//! which a background sweep keeps free of expired keys. A key's timer (the
//! [`Scheduler`] contract) is in a sorted set the CAS script writes too.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use multiagents_core::scheduler::{Scheduler, TimerChange, scope_of};
use multiagents_core::store::{
    Expected, PutEntry, ScanPage, StoreCapabilities, Version, Versioned, conflict,
};
use multiagents_core::{Error, ErrorKind, Result, StateStore, validate};
use redis::Value;

use crate::config::RedisConfig;
use crate::connection::Conn;
use crate::error::{map, shape};
use crate::scripts;
use crate::stored;
use crate::timers::RedisScheduler;

/// The longest TTL a write takes: its milliseconds must fit Redis's
/// expiry arithmetic and a Lua number exactly (checked before any script
/// runs, so a write never fails half done on its expiry).
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Index entries a sweep step examines.
const SWEEP_SLICE: usize = 1000;

/// The state store on Redis. Cheap to clone (clones share connections).
///
/// Versions come in blocks from one counter per key prefix (see the key
/// layout), so they grow across a delete and re-create of a key (no ABA). Scans return each present key
/// exactly once, in ascending order.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    /// The timers of its keys, written by the same script as the state.
    timers: std::sync::Arc<RedisScheduler>,
    /// Keeps the sweep task alive (it holds a `Weak`).
    _alive: std::sync::Arc<()>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("config", self.conn.config())
            .finish()
    }
}

impl RedisStore {
    /// Connects with the defaults of [`RedisConfig::new`], overridden by the
    /// options in `url`'s query ([`RedisConfig::from_url`]).
    ///
    /// # Errors
    /// `Config` for a bad URL; `Unavailable` when the server cannot be
    /// reached after the configured attempts; `PermissionDenied` for
    /// refused credentials. Messages show the URL without its password.
    pub async fn connect(url: &str) -> Result<RedisStore> {
        Self::with_config(RedisConfig::from_url(url)?).await
    }

    /// Connects with `config`; errors as [`connect`](Self::connect).
    pub async fn with_config(config: RedisConfig) -> Result<RedisStore> {
        let conn = Conn::open(config).await?;
        let alive = std::sync::Arc::new(());
        conn.spawn(sweep(conn.clone(), std::sync::Arc::downgrade(&alive)));
        let timers = std::sync::Arc::new(RedisScheduler::new(conn.clone()));
        Ok(RedisStore {
            conn,
            timers,
            _alive: alive,
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &RedisConfig {
        self.conn.config()
    }

    fn check_value(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        validate::key(key)?;
        validate::ttl(ttl)?;
        if let Some(ttl) = ttl.filter(|t| *t > MAX_TTL) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "ttl is longer than the Redis store takes (100 years; use None for no expiry)",
            )
            .with_operation("redis.store.write")
            .with_context("key", key)
            .with_context("ttl", format!("{ttl:?}")));
        }
        validate::size("value", value.len(), self.conn.config().max_payload)
            .map_err(|e| e.with_context("key", key))
    }
}

fn with_key(err: Error, keys: &[String]) -> Error {
    match keys {
        [one] => err.with_context("key", one),
        _ => err.with_context("keys", keys.len()),
    }
}

fn ttl_ms(ttl: Option<Duration>) -> u64 {
    // Round up: a TTL of 100 µs is 1 ms, never "no expiry".
    ttl.map_or(0, |d| d.as_nanos().div_ceil(1_000_000).max(1) as u64)
}

#[async_trait]
impl StateStore for RedisStore {
    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::full("redis", self.conn.config().max_payload)
    }

    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        validate::key(key)?;
        const OP: &str = "redis.store.get";
        self.conn.check_open(OP)?;
        let state = self.conn.keys().state(key);
        let reply = redis::cmd("GET")
            .arg(&state)
            .query_async::<Value>(&mut self.conn.cmd())
            .await;
        match reply {
            Ok(reply) => stored::from_reply(key, reply),
            // A hash: what an earlier release wrote (or something foreign).
            Err(e) if e.code() == Some("WRONGTYPE") => {
                let reply = redis::cmd("HMGET")
                    .arg(&state)
                    .arg("v")
                    .arg("n")
                    .query_async::<Value>(&mut self.conn.cmd())
                    .await;
                match reply {
                    Ok(Value::Array(fields)) if fields.len() == 2 => {
                        let mut it = fields.into_iter();
                        stored::legacy(key, it.next(), it.next())
                    }
                    Ok(other) => Err(shape(OP, "[value, version]", &other).with_context("key", key)),
                    // Not a hash either: another instance replaced the hash
                    // by a string meanwhile (that only goes one way).
                    Err(e) if e.code() == Some("WRONGTYPE") => redis::cmd("GET")
                        .arg(&state)
                        .query_async::<Value>(&mut self.conn.cmd())
                        .await
                        .map_err(|e| map(OP, e).with_context("key", key))
                        .and_then(|reply| stored::from_reply(key, reply)),
                    Err(e) => Err(map(OP, e).with_context("key", key)),
                }
            }
            Err(e) => Err(map(OP, e).with_context("key", key)),
        }
    }

    async fn put(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<Version> {
        let mut versions = self.put_batch(vec![PutEntry::new(key, value, ttl)]).await?;
        versions.pop().ok_or_else(|| {
            Error::new(ErrorKind::Unexpected, "Redis returned no version for a put")
                .with_operation("redis.store.put")
                .with_context("key", key)
        })
    }

    async fn put_batch(&self, entries: Vec<PutEntry>) -> Result<Vec<Version>> {
        for e in &entries {
            self.check_value(&e.key, &e.value, e.ttl)?;
        }
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        self.conn.check_open("redis.store.put")?;
        let keys = self.conn.keys();
        let mut call = scripts::PUT.prepare_invoke();
        call.key(keys.version_counter()).key(keys.index());
        for e in &entries {
            call.key(keys.state(&e.key));
            call.arg(&e.key).arg(e.value.as_ref()).arg(ttl_ms(e.ttl));
        }
        let versions: Vec<i64> = call.invoke_async(&mut self.conn.cmd()).await.map_err(|e| {
            let keys: Vec<String> = entries.iter().map(|e| e.key.clone()).collect();
            with_key(map("redis.store.put", e), &keys)
        })?;
        if versions.len() != entries.len() {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!(
                    "Redis returned {} versions for {} writes",
                    versions.len(),
                    entries.len()
                ),
            )
            .with_operation("redis.store.put"));
        }
        Ok(versions.into_iter().map(|v| Version(v as u64)).collect())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        validate::key(key)?;
        self.conn.check_open("redis.store.delete")?;
        let keys = self.conn.keys();
        let removed: i64 = scripts::DELETE
            .key(keys.state(key))
            .key(keys.index())
            .key(keys.timers(scope_of(key)))
            .arg(key)
            .invoke_async(&mut self.conn.cmd())
            .await
            .map_err(|e| map("redis.store.delete", e).with_context("key", key))?;
        Ok(removed > 0)
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

    fn scheduler(&self) -> Option<std::sync::Arc<dyn Scheduler>> {
        Some(self.timers.clone())
    }

    /// One script writes the state and sets or clears its timer.
    async fn compare_and_swap_timed(
        &self,
        key: &str,
        expected: Expected,
        value: Bytes,
        ttl: Option<Duration>,
        timer: TimerChange,
    ) -> Result<Version> {
        self.check_value(key, &value, ttl)?;
        self.conn.check_open("redis.store.compare_and_swap")?;
        let (want, likely) = match expected {
            Expected::Absent => (String::new(), None),
            Expected::Version(v) => (v.0.to_string(), v.0.checked_add(1)),
        };
        let stored = stored::encode(likely, ttl.is_some(), &value);
        let reply: Vec<i64> = scripts::CAS
            .key(self.conn.keys().state(key))
            .key(self.conn.keys().version_counter())
            .key(self.conn.keys().index())
            .key(self.conn.keys().timers(scope_of(key)))
            .arg(want)
            .arg(stored)
            .arg(ttl_ms(ttl))
            .arg(key)
            .arg(match timer {
                TimerChange::Keep => String::new(),
                TimerChange::Clear => "-".to_string(),
                TimerChange::At(due) => due.to_string(),
            })
            .invoke_async(&mut self.conn.cmd())
            .await
            .map_err(|e| map("redis.store.compare_and_swap", e).with_context("key", key))?;
        match reply.as_slice() {
            [1, v] => Ok(Version(*v as u64)),
            [0, actual] => Err(conflict(
                key,
                expected,
                (*actual > 0).then_some(Version(*actual as u64)),
            )),
            other => Err(Error::new(
                ErrorKind::Unexpected,
                format!("unexpected compare-and-swap answer from Redis: {other:?}"),
            )
            .with_operation("redis.store.compare_and_swap")
            .with_context("key", key)),
        }
    }

    async fn scan(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<ScanPage> {
        const OP: &str = "redis.store.scan";
        validate::prefix(prefix)?;
        self.conn.check_open(OP)?;
        if limit == 0 {
            return Err(
                Error::new(ErrorKind::InvalidInput, "scan limit must be at least 1")
                    .with_operation(OP)
                    .with_context("limit", 0),
            );
        }
        let min = match cursor {
            None => format!("[{prefix}"),
            Some(c) if validate::key(c).is_ok() && c.starts_with(prefix) => format!("({c}"),
            Some(c) => {
                return Err(
                    Error::new(ErrorKind::InvalidInput, "not a scan cursor of this prefix")
                        .with_operation(OP)
                        .with_context("cursor", c)
                        .with_context("prefix", prefix),
                );
            }
        };
        // Keys are UTF-8, which never holds the byte 0xff: every key that
        // starts with `prefix` sorts before `prefix` + 0xff.
        let mut max = Vec::with_capacity(prefix.len() + 2);
        if prefix.is_empty() {
            max.push(b'+');
        } else {
            max.push(b'(');
            max.extend_from_slice(prefix.as_bytes());
            max.push(0xff);
        }
        let keys = self.conn.keys();
        let reply: Value = scripts::SCAN
            .key(keys.index())
            .arg(min)
            .arg(max)
            .arg(limit)
            .arg(keys.state_prefix())
            .invoke_async(&mut self.conn.cmd())
            .await
            .map_err(|e| map(OP, e).with_context("prefix", prefix))?;
        let Value::Array(items) = reply else {
            return Err(shape(OP, "[cursor, entries…]", &reply));
        };
        let mut items = items.into_iter();
        let cursor = items.next().and_then(bulk_string);
        let mut entries = Vec::new();
        for item in items {
            let Value::Array(parts) = item else {
                return Err(shape(OP, "[key, kind, ...]", &item));
            };
            let mut parts = parts.into_iter();
            let (Some(key), Some(kind)) = (
                parts.next().and_then(bulk_string),
                parts.next().and_then(bulk_string),
            ) else {
                return Err(Error::new(ErrorKind::Unexpected, "scan entry without a key").with_operation(OP));
            };
            let read = match kind.as_str() {
                "s" => stored::from_reply(&key, parts.next().unwrap_or(Value::Nil)),
                "h" => stored::legacy(&key, parts.next(), parts.next()),
                _ => {
                    let held = parts.next().and_then(bulk_string).unwrap_or_default();
                    tracing::warn!(key = %key, held = %held, "scan skips a state key that holds another type");
                    continue;
                }
            };
            match read {
                Ok(Some(v)) => entries.push((key, v)),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "scan skips a corrupted state key"),
            }
        }
        Ok(ScanPage { entries, cursor })
    }

    /// Ends the index sweep; later calls (by any clone) fail with `Closed`.
    async fn close(&self) -> Result<()> {
        self.conn.close().await;
        Ok(())
    }
}

fn bulk_string(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

/// Walks the index a slice per `trim_interval`, removing entries of keys
/// that expired; ends when the store is dropped.
async fn sweep(conn: Conn, alive: std::sync::Weak<()>) {
    let mut tick = tokio::time::interval(conn.config().trim_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut from = "-".to_string();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = conn.closed().cancelled() => return,
        }
        if alive.upgrade().is_none() {
            return;
        }
        let keys = conn.keys();
        let swept: redis::RedisResult<(Option<String>, i64)> = scripts::SWEEP
            .key(keys.index())
            .arg(&from)
            .arg(SWEEP_SLICE)
            .arg(keys.state_prefix())
            .invoke_async(&mut conn.cmd())
            .await;
        match swept {
            Ok((next, removed)) => {
                if removed > 0 {
                    tracing::trace!(removed, "swept index entries of expired state keys");
                }
                from = next.map_or_else(|| "-".to_string(), |m| format!("({m}"));
            }
            Err(e) => tracing::debug!(error = %e, "index sweep failed; will retry"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up() {
        assert_eq!(ttl_ms(None), 0);
        assert_eq!(ttl_ms(Some(Duration::from_micros(100))), 1);
        assert_eq!(ttl_ms(Some(Duration::from_millis(1500))), 1500);
    }
}
