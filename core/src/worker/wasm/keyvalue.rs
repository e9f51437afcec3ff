//! Host side of `wasi:keyvalue` (`store`, `atomics`, `batch`) over the
//! runtime's [`StateStore`](crate::StateStore).
//!
//! A bucket `b` opened by a worker whose namespace is `ns` maps to store
//! keys `kv/<ns>/<b>/<key>`: workers with different namespaces can never see
//! each other's state. `increment` is a compare-and-swap loop, atomic across
//! instances and runtimes sharing the store. Store failures reach the guest
//! as `error::other(message)`. Writes that grow the namespace are bounded
//! by the worker's [`StateQuota`](crate::worker::StateQuota) (`quota`).
//! Every write is refused once the run's [`Lease`](crate::worker::Lease)
//! lapsed.

use bytes::Bytes;
use wasmtime::component::Resource;

use super::bindings::wasi::keyvalue::{atomics, batch, store};
use super::quota::{self, Change};
use super::state::HostState;
use crate::store::{Expected, PutEntry};
use crate::worker::lease;

/// Most keys per `list-keys` page and per batch call.
const MAX_KEYS: usize = 1000;
/// Longest key a worker may use.
const MAX_KEY_LEN: usize = 512;
/// CAS attempts of one `increment` before giving up (heavy contention).
const INCREMENT_ATTEMPTS: usize = 64;

/// A bucket resource: its store-key prefix and the scan cursors handed out.
#[allow(unreachable_pub)] // named by the generated bindings
pub struct BucketHandle {
    prefix: String,
    cursors: Vec<String>,
}

/// The `wasi:keyvalue/store.error` of the host, or a trap.
#[allow(unreachable_pub)] // named by the generated bindings
pub enum KvError {
    NoSuchStore,
    AccessDenied,
    Other(String),
    Trap(wasmtime::Error),
}

impl From<wasmtime::component::ResourceTableError> for KvError {
    fn from(e: wasmtime::component::ResourceTableError) -> Self {
        KvError::Trap(e.into())
    }
}

impl From<crate::Error> for KvError {
    fn from(e: crate::Error) -> Self {
        KvError::Other(e.to_string())
    }
}

fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || key.chars().any(char::is_control) {
        return Err(KvError::Other(format!(
            "invalid key {key:?}: 1..={MAX_KEY_LEN} bytes without control characters"
        )));
    }
    Ok(())
}

/// Whether the run being served by worker `worker` may still write
/// ([`lease`]): checked before a write's bookkeeping (a refused write
/// reserves no quota) and again right before the store write, so a run
/// frozen past its hold and woken up cannot apply a superseded effect (nor
/// emit an event, `imports.rs`). A refusal is logged and counted
/// (`multiagents_worker_writes_refused_total`).
pub(super) fn fenced(worker: &str) -> crate::Result<()> {
    lease::check_current().inspect_err(|e| {
        metrics::counter!("multiagents_worker_writes_refused_total", "worker" => worker.to_string())
            .increment(1);
        tracing::warn!(worker, error = %e, "a state write of a superseded run refused");
    })
}

impl HostState {
    fn store_key(&self, bucket: &Resource<BucketHandle>, key: &str) -> Result<String, KvError> {
        check_key(key)?;
        Ok(format!("{}{key}", self.table.get(bucket)?.prefix))
    }

    fn ttl(&self) -> Option<std::time::Duration> {
        self.env.spec.state_ttl
    }
}

/// The quota bookkeeping of a worker's writes (on the shared env, so the
/// host's futures stay `Send`).
impl super::state::WorkerEnv {
    /// What writing `value_len` bytes at store key `full` changes in the
    /// namespace (`None` without a quota: nothing is read).
    async fn write_change(&self, full: &str, value_len: usize) -> Result<Option<Change>, KvError> {
        if self.spec.state_quota.is_none() {
            return Ok(None);
        }
        let old = self.services.store.get_fresh(full).await?.map(|v| v.value.len());
        Ok(Some(Change::of_write(self.counted(full), old, value_len)))
    }

    /// `full` without `kv/<ns>/`: the name the quota counts.
    fn counted<'a>(&self, full: &'a str) -> &'a str {
        full.strip_prefix("kv/")
            .and_then(|rest| rest.strip_prefix(self.namespace.as_str()))
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(full)
    }

    /// Reserves what grows (`change`), before the write: from this
    /// process's allowance when it holds enough, else a chunk (or, near the
    /// bound, just `change`) from the namespace's record.
    async fn reserve(&self, change: Option<Change>) -> Result<(), KvError> {
        let (Some(c), Some(q)) = (change, &self.spec.state_quota) else {
            return Ok(());
        };
        if !c.grows() || self.allowance.take(c) {
            return Ok(());
        }
        // One reservation at a time per process; the one before may have
        // refilled the allowance.
        let _turn = self.allowance.refilling().await;
        if self.allowance.take(c) {
            return Ok(());
        }
        let need = Change {
            keys: c.keys.max(0),
            bytes: c.bytes.max(0),
        };
        let chunk = quota::chunk(q);
        let ask = Change {
            keys: need.keys.max(chunk.keys),
            bytes: need.bytes.max(chunk.bytes),
        };
        let store = self.services.store.as_ref();
        let got = match quota::reserve(store, &self.namespace, q, ask).await {
            Ok(()) => ask,
            Err(_) => {
                quota::reserve(store, &self.namespace, q, need).await?;
                need
            }
        };
        let spare = got.minus(need);
        self.give_back(spare).await;
        Ok(())
    }

    /// Puts `spare` in the allowance, returning to the record what passes two
    /// chunks.
    async fn give_back(&self, spare: Change) {
        let Some(q) = &self.spec.state_quota else { return };
        let chunk = quota::chunk(q);
        let cap = chunk.plus(chunk);
        let excess = self.allowance.refill(spare, cap);
        if excess != Change::default() {
            let back = excess.negated();
            quota::release(self.services.store.as_ref(), &self.namespace, back).await;
        }
    }

    /// After a successful write: gives back what shrank (to the allowance).
    /// After a failed one nothing is given back: a write that timed out may
    /// have landed, and a record left high is repaired by the next recount,
    /// while one left low would let the namespace pass its bound.
    async fn settle(&self, change: Option<Change>, failed: bool) {
        let Some(c) = change else { return };
        if failed || c.grows() || c == Change::default() {
            return;
        }
        self.give_back(c.negated()).await;
    }

    /// Deletes store key `full`, giving its keys and bytes back.
    async fn delete_counted(&self, full: &str) -> Result<(), KvError> {
        fenced(&self.name)?;
        let old = match self.spec.state_quota {
            Some(_) => self.services.store.get_fresh(full).await?.map(|v| v.value.len()),
            None => None,
        };
        fenced(&self.name)?;
        let deleted = self.services.store.delete(full).await?;
        if let (true, Some(len)) = (deleted, old) {
            let change = Change::of_delete(self.counted(full), len);
            self.give_back(change.negated()).await;
        }
        Ok(())
    }
}

impl store::Host for HostState {
    async fn open(&mut self, identifier: String) -> Result<Resource<BucketHandle>, KvError> {
        let name = if identifier.is_empty() {
            "default"
        } else {
            identifier.as_str()
        };
        if crate::validate::group(name).is_err() || name.len() > 64 {
            return Err(KvError::NoSuchStore);
        }
        if let Some(allowed) = &self.env.spec.buckets
            && !allowed.iter().any(|b| b == name)
        {
            return Err(KvError::AccessDenied);
        }
        let prefix = format!("kv/{}/{name}/", self.env.namespace);
        Ok(self.table.push(BucketHandle {
            prefix,
            cursors: Vec::new(),
        })?)
    }

    fn convert_error(&mut self, err: KvError) -> wasmtime::Result<store::Error> {
        match err {
            KvError::NoSuchStore => Ok(store::Error::NoSuchStore),
            KvError::AccessDenied => Ok(store::Error::AccessDenied),
            KvError::Other(m) => Ok(store::Error::Other(m)),
            KvError::Trap(e) => Err(e),
        }
    }
}

impl store::HostBucket for HostState {
    async fn get(&mut self, bucket: Resource<BucketHandle>, key: String) -> Result<Option<Vec<u8>>, KvError> {
        let key = self.store_key(&bucket, &key)?;
        Ok(self.env.services.store.get(&key).await?.map(|v| v.value.to_vec()))
    }

    async fn set(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), KvError> {
        let key = self.store_key(&bucket, &key)?;
        let env = self.env.clone();
        fenced(&env.name)?;
        let change = env.write_change(&key, value.len()).await?;
        env.reserve(change).await?;
        // (Settling a write that never ran gives nothing back: skipped.)
        fenced(&env.name)?;
        let put = self
            .env
            .services
            .store
            .put(&key, Bytes::from(value), self.ttl())
            .await;
        env.settle(change, put.is_err()).await;
        put?;
        Ok(())
    }

    async fn delete(&mut self, bucket: Resource<BucketHandle>, key: String) -> Result<(), KvError> {
        let key = self.store_key(&bucket, &key)?;
        self.env.clone().delete_counted(&key).await
    }

    async fn exists(&mut self, bucket: Resource<BucketHandle>, key: String) -> Result<bool, KvError> {
        let key = self.store_key(&bucket, &key)?;
        Ok(self.env.services.store.get(&key).await?.is_some())
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<BucketHandle>,
        cursor: Option<u64>,
    ) -> Result<store::KeyResponse, KvError> {
        let handle = self.table.get(&bucket)?;
        let prefix = handle.prefix.clone();
        let from = match cursor {
            None => None,
            Some(c) => Some(
                handle
                    .cursors
                    .get(c as usize)
                    .cloned()
                    .ok_or_else(|| KvError::Other(format!("unknown cursor {c}")))?,
            ),
        };
        let page = self
            .env
            .services
            .store
            .scan(&prefix, from.as_deref(), MAX_KEYS)
            .await?;
        let keys = page
            .entries
            .iter()
            .filter_map(|(k, _)| k.strip_prefix(&prefix).map(str::to_string))
            .collect();
        let cursor = match page.cursor {
            Some(next) => {
                let handle = self.table.get_mut(&bucket)?;
                handle.cursors.push(next);
                Some((handle.cursors.len() - 1) as u64)
            }
            None => None,
        };
        Ok(store::KeyResponse { keys, cursor })
    }

    async fn drop(&mut self, bucket: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for HostState {
    async fn increment(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        delta: u64,
    ) -> Result<u64, KvError> {
        let key = self.store_key(&bucket, &key)?;
        let env = self.env.clone();
        let store = self.env.services.store.clone();
        fenced(&env.name)?;
        for _ in 0..INCREMENT_ATTEMPTS {
            let current = store.get(&key).await?;
            let (value, expected) = match &current {
                None => (0u64, Expected::Absent),
                Some(v) => {
                    let n = std::str::from_utf8(&v.value)
                        .ok()
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .ok_or_else(|| {
                            KvError::Other(format!("value at {key:?} is not a decimal counter"))
                        })?;
                    (n, Expected::Version(v.version))
                }
            };
            let next = value
                .checked_add(delta)
                .ok_or_else(|| KvError::Other(format!("counter {key:?} would overflow")))?;
            let text = next.to_string();
            let change = env.spec.state_quota.map(|_| {
                let old = current.as_ref().map(|v| v.value.len());
                Change::of_write(env.counted(&key), old, text.len())
            });
            env.reserve(change).await?;
            // A refusal is not a lost race: no retry (nothing was written,
            // and a failed write gives nothing back).
            fenced(&env.name)?;
            let swapped = store
                .compare_and_swap(&key, expected, Bytes::from(text), self.ttl())
                .await;
            env.settle(change, swapped.is_err()).await;
            match swapped {
                Ok(_) => return Ok(next),
                Err(e) if e.kind() == crate::ErrorKind::Conflict => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(KvError::Other(format!(
            "increment of {key:?} lost {INCREMENT_ATTEMPTS} races; try again"
        )))
    }
}

impl batch::Host for HostState {
    async fn get_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        if keys.len() > MAX_KEYS {
            return Err(KvError::Other(format!("at most {MAX_KEYS} keys per batch")));
        }
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let full = self.store_key(&bucket, &key)?;
            out.push(
                self.env
                    .services
                    .store
                    .get(&full)
                    .await?
                    .map(|v| (key, v.value.to_vec())),
            );
        }
        Ok(out)
    }

    async fn set_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KvError> {
        if key_values.len() > MAX_KEYS {
            return Err(KvError::Other(format!("at most {MAX_KEYS} keys per batch")));
        }
        let ttl = self.ttl();
        let env = self.env.clone();
        fenced(&env.name)?;
        // One entry per key, the last value winning (as the store would
        // leave it): repeats must not be counted, or given back, twice.
        let mut last = std::collections::HashMap::with_capacity(key_values.len());
        for (i, (key, _)) in key_values.iter().enumerate() {
            last.insert(key.clone(), i);
        }
        let key_values: Vec<(String, Vec<u8>)> = key_values
            .into_iter()
            .enumerate()
            .filter(|(i, (key, _))| last.get(key) == Some(i))
            .map(|(_, kv)| kv)
            .collect();
        let mut entries = Vec::with_capacity(key_values.len());
        let mut change: Option<Change> = None;
        for (key, value) in key_values {
            let full = self.store_key(&bucket, &key)?;
            if let Some(c) = env.write_change(&full, value.len()).await? {
                change = Some(change.unwrap_or_default().plus(c));
            }
            entries.push(PutEntry::new(full, value, ttl));
        }
        env.reserve(change).await?;
        fenced(&env.name)?;
        let put = self.env.services.store.put_batch(entries).await;
        env.settle(change, put.is_err()).await;
        put?;
        Ok(())
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Result<(), KvError> {
        if keys.len() > MAX_KEYS {
            return Err(KvError::Other(format!("at most {MAX_KEYS} keys per batch")));
        }
        let env = self.env.clone();
        for key in keys {
            let full = self.store_key(&bucket, &key)?;
            env.delete_counted(&full).await?;
        }
        Ok(())
    }
}
