//! Per-namespace state quotas ([`StateQuota`]): a worker cannot fill the
//! store.
//!
//! Each namespace has a usage record, `kvmeta/<ns>/usage`: the keys it
//! holds and their bytes (key plus value). It is kept outside `kv/<ns>/`, so
//! no worker can read or write it. A write that adds keys or bytes reserves
//! them first, and is refused past the bound. A process reserves in chunks
//! (a compare-and-swap of the record per chunk, [`Allowance`]) and spends them
//! locally. Deletes and shrinking writes give back to its chunk. So the
//! bound can be passed by up to two chunks per process.
//!
//! Before a refusal the namespace is counted again (scanned) and the count
//! written back, at most once a second per namespace. That forgets values
//! that expired (`state_ttl`) and reservations left by writes that failed
//! or died halfway (a failed write gives nothing back: it may have landed).
//! Such leftovers only make the record too high.
//!
//! The record can run low in two cases, and then the namespace can pass its
//! bound by the sizes involved:
//! - writers that overwrite or delete the same key at the same moment (both
//!   read the same old size);
//! - a recount that overwrites reservations made while it scanned, whose
//!   writes had not landed yet.
//!
//! The refusal reaches the guest as `error::other` with a message starting
//! [`QUOTA_EXCEEDED`]; the SDKs turn that into a typed error.

use std::time::Duration;

use bytes::Bytes;

use super::keyvalue::KvError;
use crate::scheduler::millis;
use crate::store::{Expected, StateStore};
use crate::worker::StateQuota;

/// How a refusal's message starts (the SDKs match it).
pub(crate) const QUOTA_EXCEEDED: &str = "state quota exceeded";
/// Compare-and-swap attempts of one reservation before giving up.
const ATTEMPTS: usize = 64;
/// Keys per scan page of a recount.
const PAGE: usize = 1000;
/// Fewest time between two recounts of one namespace made for refusals.
const RECOUNT_EVERY: Duration = Duration::from_secs(1);

/// What a write changes: keys and bytes added (negative: taken away).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) keys: i64,
    pub(crate) bytes: i64,
}

impl Change {
    /// Writing `key` with a value of `new` bytes over `old` (None: absent).
    pub(crate) fn of_write(key: &str, old: Option<usize>, new: usize) -> Change {
        let size = |len: usize| (key.len() + len) as i64;
        Change {
            keys: i64::from(old.is_none()),
            bytes: size(new) - old.map_or(0, size),
        }
    }

    /// Deleting `key`, whose value had `old` bytes.
    pub(crate) fn of_delete(key: &str, old: usize) -> Change {
        Change {
            keys: -1,
            bytes: -((key.len() + old) as i64),
        }
    }

    /// Whether it adds keys or bytes (and so needs a reservation first).
    pub(crate) fn grows(self) -> bool {
        self.keys > 0 || self.bytes > 0
    }

    pub(crate) fn plus(self, other: Change) -> Change {
        Change {
            keys: self.keys + other.keys,
            bytes: self.bytes + other.bytes,
        }
    }

    pub(crate) fn minus(self, other: Change) -> Change {
        self.plus(other.negated())
    }

    pub(crate) fn negated(self) -> Change {
        Change {
            keys: -self.keys,
            bytes: -self.bytes,
        }
    }
}

/// Quota a process reserved in the usage record ahead of its writes, and
/// has not used yet. Reserving one write at a time makes every writer of a
/// namespace compare-and-swap one record: measured, 256 concurrent writers
/// in one namespace fell from 6 000 to under 100 workflows/s in memory, and
/// to none on Redis. So a process reserves a chunk (a hundredth of the
/// bound, at most 1 000 keys) and spends it locally; deletes and shrinking
/// writes refill it, and what passes two chunks goes back to the record.
/// A process that dies takes its allowance with it: the record stays high
/// until the next recount.
/// Only one reservation per process is in flight: without that, a burst
/// of writes that find the allowance empty all reserve a chunk at once, race on
/// the record, and take many chunks (measured: on Redis, stragglers past
/// 30 s).
#[derive(Default)]
pub(crate) struct Allowance {
    held: std::sync::Mutex<Change>,
    refilling: tokio::sync::Mutex<()>,
}

impl Allowance {
    fn lock(&self) -> std::sync::MutexGuard<'_, Change> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for this process's turn to reserve from the record.
    pub(crate) async fn refilling(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.refilling.lock().await
    }

    /// Spends `change` from the allowance when it holds enough.
    pub(crate) fn take(&self, change: Change) -> bool {
        let mut held = self.lock();
        let left = Change {
            keys: held.keys - change.keys.max(0),
            bytes: held.bytes - change.bytes.max(0),
        };
        if left.keys < 0 || left.bytes < 0 {
            return false;
        }
        *held = left;
        true
    }

    /// Adds `spare` to the allowance; returns what passes `cap` (to give back
    /// to the record).
    pub(crate) fn refill(&self, spare: Change, cap: Change) -> Change {
        let mut held = self.lock();
        let total = held.plus(spare);
        let kept = Change {
            keys: total.keys.min(cap.keys),
            bytes: total.bytes.min(cap.bytes),
        };
        *held = kept;
        total.minus(kept)
    }
}

/// How much a process reserves at a time under `quota`.
pub(crate) fn chunk(quota: &StateQuota) -> Change {
    Change {
        keys: i64::try_from((quota.max_keys / 100).clamp(1, 1000)).unwrap_or(1000),
        bytes: i64::try_from((quota.max_bytes / 100).clamp(1, 1 << 20)).unwrap_or(1 << 20),
    }
}

/// Keys and bytes of a namespace, and when a refusal last recounted it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Usage {
    keys: u64,
    bytes: u64,
    /// When a refusal last recounted the namespace (ms since the epoch;
    /// 0: never).
    recounted_ms: u64,
}

impl Usage {
    fn decode(raw: &[u8]) -> Option<Usage> {
        let text = std::str::from_utf8(raw).ok()?;
        let mut parts = text.split(' ');
        let usage = Usage {
            keys: parts.next()?.parse().ok()?,
            bytes: parts.next()?.parse().ok()?,
            recounted_ms: parts.next().map_or(Some(0), |p| p.parse().ok())?,
        };
        parts.next().is_none().then_some(usage)
    }

    fn encode(self) -> Bytes {
        Bytes::from(format!("{} {} {}", self.keys, self.bytes, self.recounted_ms))
    }

    fn apply(self, c: Change) -> Usage {
        Usage {
            keys: self.keys.saturating_add_signed(c.keys),
            bytes: self.bytes.saturating_add_signed(c.bytes),
            recounted_ms: self.recounted_ms,
        }
    }

    fn within(self, q: &StateQuota) -> bool {
        self.keys <= q.max_keys && self.bytes <= q.max_bytes
    }
}

fn record_key(ns: &str) -> String {
    format!("kvmeta/{ns}/usage")
}

/// Reserves `change` (which [`Change::grows`]) in namespace `ns`, or
/// refuses it past `quota`. Before refusing, the namespace is recounted
/// and the fresh count written back, at most once per [`RECOUNT_EVERY`]
/// per namespace (a guest looping at its bound does not scan the store on
/// every call).
pub(crate) async fn reserve(
    store: &dyn StateStore,
    ns: &str,
    quota: &StateQuota,
    change: Change,
) -> Result<(), KvError> {
    let key = record_key(ns);
    let mut recounted = false;
    for attempt in 0..ATTEMPTS {
        let (usage, expected) = match store.get(&key).await? {
            Some(v) => match Usage::decode(&v.value) {
                Some(u) => (u, Expected::Version(v.version)),
                None => (recount(store, ns).await?, Expected::Version(v.version)),
            },
            None => (recount(store, ns).await?, Expected::Absent),
        };
        let next = usage.apply(change);
        let now = crate::orchestrator::now_ms();
        let write = if next.within(quota) {
            next
        } else if !recounted && now.saturating_sub(usage.recounted_ms) >= millis(RECOUNT_EVERY) {
            // Judge a refusal against a fresh count: expired values and
            // half-done writes leave the record high. Write it back, then
            // read again.
            recounted = true;
            Usage {
                recounted_ms: now,
                ..recount(store, ns).await?
            }
        } else {
            return Err(KvError::Other(format!(
                "{QUOTA_EXCEEDED}: namespace {ns:?} would hold {} keys and {} bytes, past its quota of \
                 {} keys and {} bytes (the worker's state_max_keys and state_max_mb)",
                next.keys, next.bytes, quota.max_keys, quota.max_bytes
            )));
        };
        match store.compare_and_swap(&key, expected, write.encode(), None).await {
            Ok(_) if write == next => return Ok(()),
            Ok(_) => continue,
            Err(e) if e.kind() == crate::ErrorKind::Conflict => backoff(attempt).await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(KvError::Other(format!(
        "the state usage record of namespace {ns:?} lost {ATTEMPTS} races; try again"
    )))
}

/// A short, jittered wait after a lost race on the record (writers of one
/// namespace all update it).
async fn backoff(attempt: usize) {
    let cap = 1u64 << attempt.min(4);
    let jitter = u64::from(std::process::id() ^ crate::orchestrator::now_ms() as u32) % (cap * 500);
    tokio::time::sleep(Duration::from_micros(100 + jitter)).await;
}

/// Applies `change` to the record without a bound: a release (best effort:
/// a lost release leaves the record high, which the next recount fixes).
pub(crate) async fn release(store: &dyn StateStore, ns: &str, change: Change) {
    let key = record_key(ns);
    for _ in 0..ATTEMPTS {
        let Ok(Some(v)) = store.get(&key).await else {
            return;
        };
        let Some(usage) = Usage::decode(&v.value) else {
            return;
        };
        let next = usage.apply(change).encode();
        match store
            .compare_and_swap(&key, Expected::Version(v.version), next, None)
            .await
        {
            Err(e) if e.kind() == crate::ErrorKind::Conflict => continue,
            _ => return,
        }
    }
}

/// Counts namespace `ns` from the store.
async fn recount(store: &dyn StateStore, ns: &str) -> Result<Usage, KvError> {
    let prefix = format!("kv/{ns}/");
    let mut usage = Usage::default();
    let mut seen = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.scan(&prefix, cursor.as_deref(), PAGE).await?;
        for (k, v) in &page.entries {
            // A scan may return a key twice; count it once.
            if seen.insert(k.clone()) {
                let inner = k.strip_prefix(&prefix).unwrap_or(k);
                usage = usage.apply(Change::of_write(inner, None, v.value.len()));
            }
        }
        cursor = page.cursor;
        if cursor.is_none() {
            return Ok(usage);
        }
    }
}

#[cfg(test)]
#[path = "quota_tests.rs"]
mod tests;
