//! Durable worker state: buckets of the standard `wasi:keyvalue` interfaces
//! (`store`, `atomics`, `batch` @0.2.0-draft).
//!
//! The host maps buckets onto the runtime's state store, inside the worker's
//! state *namespace*: by default its own, so workers never see each other's
//! state; a step shares state with its compensation by being registered in
//! the same namespace. A registration may also restrict which bucket names a
//! worker may open. Values are bytes; the
//! `*_typed` methods store any serde value as CBOR. Counters
//! ([`Bucket::increment`]) are atomic across every instance and are stored as
//! decimal ASCII, so [`Bucket::get`] of a counter returns e.g. `b"42"`.
//!
//! Nothing in linear memory survives a call (each call gets a fresh instance
//! by default): keep anything that must outlive the call here.
//!
//! ```no_run
//! use multiagents_worker::state;
//! # fn main() -> Result<(), multiagents_worker::WorkerError> {
//! let inventory = state::open("inventory")?;
//! let reserved = inventory.increment("reserved/sku-1", 2)?;
//! inventory.set_typed("last-order", &("order-7", reserved))?;
//! let last: Option<(String, u64)> = inventory.get_typed("last-order")?;
//! # Ok(()) }
//! ```
//!
//! Off the wasm target (unit tests of a worker on the host) buckets live in a
//! thread-local map: see [`crate::testing`].

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;

/// A state operation failed: the WIT `wasi:keyvalue/store.error`, plus codec
/// failures of the typed accessors.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateError {
    /// The host does not know this bucket identifier (in the multiagents
    /// runtime: it is not a valid bucket name).
    NoSuchStore {
        /// The bucket identifier passed to [`open`].
        bucket: String,
    },
    /// The worker's registration does not grant this bucket.
    AccessDenied {
        /// The bucket identifier passed to [`open`].
        bucket: String,
    },
    /// The store failed (I/O, timeout, conflict); usually transient.
    Store(String),
    /// The write would take the worker's state namespace past its quota
    /// (`state_max_keys`, `state_max_mb` in the worker's registration).
    /// Deleting keys makes room; retrying the same write does not.
    QuotaExceeded(String),
    /// A typed value could not be encoded, or the stored bytes could not be
    /// decoded as the requested type.
    Codec {
        /// The key involved.
        key: String,
        /// What went wrong.
        message: String,
    },
    /// The host answered a batch call with a result that does not match the
    /// request (e.g. a different number of values than keys).
    Protocol(String),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::NoSuchStore { bucket } => write!(f, "state bucket `{bucket}` does not exist"),
            StateError::AccessDenied { bucket } => {
                write!(f, "state bucket `{bucket}` is not granted to this worker")
            }
            StateError::Store(m) => write!(f, "state store failed: {m}"),
            StateError::QuotaExceeded(m) => f.write_str(m),
            StateError::Codec { key, message } => write!(f, "state value at `{key}`: {message}"),
            StateError::Protocol(m) => write!(f, "state store protocol error: {m}"),
        }
    }
}

impl std::error::Error for StateError {}

/// [`StateError::Store`] is retryable (the store may come back); every other
/// variant is fatal (a missing grant, a full namespace or a malformed value
/// does not heal by retrying).
impl From<StateError> for crate::WorkerError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::Store(_) => crate::WorkerError::retryable(e.to_string()),
            _ => crate::WorkerError::fatal(e.to_string()),
        }
    }
}

/// Opens the bucket `name` (`wasi:keyvalue/store.open`).
pub fn open(name: &str) -> Result<Bucket, StateError> {
    Bucket::open(name)
}

/// An open bucket: a collection of key/value pairs (`wasi:keyvalue/store.bucket`).
pub struct Bucket {
    name: String,
    inner: imp::Bucket,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Bucket {
    /// Opens the bucket `name`; see [`open`].
    pub fn open(name: &str) -> Result<Bucket, StateError> {
        let inner = imp::open(name).map_err(|e| imp::to_state_error(e, name))?;
        Ok(Bucket {
            name: name.to_owned(),
            inner,
        })
    }

    /// The identifier this bucket was opened with.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn err(&self, e: imp::Error) -> StateError {
        imp::to_state_error(e, &self.name)
    }

    /// The value at `key`, `None` when absent.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        imp::get(&self.inner, key).map_err(|e| self.err(e))
    }

    /// Sets `key` to `value`, overwriting any previous value.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), StateError> {
        imp::set(&self.inner, key, value).map_err(|e| self.err(e))
    }

    /// Deletes `key`; deleting an absent key is not an error.
    pub fn delete(&self, key: &str) -> Result<(), StateError> {
        imp::delete(&self.inner, key).map_err(|e| self.err(e))
    }

    /// Whether `key` has a value.
    pub fn exists(&self, key: &str) -> Result<bool, StateError> {
        imp::exists(&self.inner, key).map_err(|e| self.err(e))
    }

    /// The value at `key` decoded from CBOR as a `T`, `None` when absent.
    pub fn get_typed<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StateError> {
        match self.get(key)? {
            None => Ok(None),
            Some(bytes) => codec::from_cbor(&bytes).map(Some).map_err(|e| StateError::Codec {
                key: key.to_owned(),
                message: e.to_string(),
            }),
        }
    }

    /// Sets `key` to `value` encoded as CBOR.
    pub fn set_typed<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), StateError> {
        let bytes = codec::to_cbor(value).map_err(|e| StateError::Codec {
            key: key.to_owned(),
            message: e.to_string(),
        })?;
        self.set(key, &bytes)
    }

    /// Atomically adds `delta` to the counter at `key` and returns the new
    /// value (`wasi:keyvalue/atomics.increment`). An absent key counts as 0.
    /// There is no decrement: count releases in a second counter and
    /// subtract.
    pub fn increment(&self, key: &str, delta: u64) -> Result<u64, StateError> {
        imp::increment(&self.inner, key, delta).map_err(|e| self.err(e))
    }

    /// The current value of the counter at `key` (an atomic read:
    /// `increment(key, 0)`); 0 when absent.
    pub fn counter(&self, key: &str) -> Result<u64, StateError> {
        self.increment(key, 0)
    }

    /// The values of `keys` in one round trip (`wasi:keyvalue/batch.get-many`),
    /// in the order of `keys`; `None` for an absent key.
    pub fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StateError> {
        let found = imp::get_many(&self.inner, keys).map_err(|e| self.err(e))?;
        if found.len() != keys.len() {
            return Err(StateError::Protocol(format!(
                "get-many of {} keys returned {} entries",
                keys.len(),
                found.len()
            )));
        }
        Ok(found.into_iter().map(|kv| kv.map(|(_, v)| v)).collect())
    }

    /// Sets several keys in one round trip (`wasi:keyvalue/batch.set-many`).
    /// Not atomic: on error some pairs may have been written.
    pub fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), StateError> {
        imp::set_many(&self.inner, pairs).map_err(|e| self.err(e))
    }

    /// Deletes several keys in one round trip (`wasi:keyvalue/batch.delete-many`).
    /// Not atomic: on error some keys may have been deleted.
    pub fn delete_many(&self, keys: &[String]) -> Result<(), StateError> {
        imp::delete_many(&self.inner, keys).map_err(|e| self.err(e))
    }

    /// One page of keys (`list-keys`): the keys and the cursor of the next
    /// page, `None` after the last page. Order is unspecified.
    pub fn list_keys(&self, cursor: Option<u64>) -> Result<(Vec<String>, Option<u64>), StateError> {
        imp::list_keys(&self.inner, cursor).map_err(|e| self.err(e))
    }

    /// Every key of the bucket (all pages of [`list_keys`](Self::list_keys)).
    /// Can be expensive: prefer keys you can name.
    pub fn keys(&self) -> Result<Vec<String>, StateError> {
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let (keys, next) = self.list_keys(cursor)?;
            all.extend(keys);
            match next {
                Some(c) if Some(c) != cursor => cursor = Some(c),
                _ => return Ok(all),
            }
        }
    }
}

/// The component-model implementation: calls the imported interfaces.
#[cfg(target_arch = "wasm32")]
mod imp {
    use crate::bindings::wasi::keyvalue::{atomics, batch, store};

    pub(super) use store::{Bucket, Error};

    /// How the host's quota refusal starts (`core/src/worker/wasm/quota.rs`).
    const QUOTA_EXCEEDED: &str = "state quota exceeded";

    pub(super) fn to_state_error(e: Error, bucket: &str) -> super::StateError {
        match e {
            Error::NoSuchStore => super::StateError::NoSuchStore {
                bucket: bucket.to_owned(),
            },
            Error::AccessDenied => super::StateError::AccessDenied {
                bucket: bucket.to_owned(),
            },
            // The host's quota refusal comes as `other` with this prefix.
            Error::Other(m) if m.starts_with(QUOTA_EXCEEDED) => super::StateError::QuotaExceeded(m),
            Error::Other(m) => super::StateError::Store(m),
        }
    }

    pub(super) fn open(name: &str) -> Result<Bucket, Error> {
        store::open(name)
    }
    pub(super) fn get(b: &Bucket, key: &str) -> Result<Option<Vec<u8>>, Error> {
        b.get(key)
    }
    pub(super) fn set(b: &Bucket, key: &str, value: &[u8]) -> Result<(), Error> {
        b.set(key, value)
    }
    pub(super) fn delete(b: &Bucket, key: &str) -> Result<(), Error> {
        b.delete(key)
    }
    pub(super) fn exists(b: &Bucket, key: &str) -> Result<bool, Error> {
        b.exists(key)
    }
    pub(super) fn increment(b: &Bucket, key: &str, delta: u64) -> Result<u64, Error> {
        atomics::increment(b, key, delta)
    }
    #[allow(clippy::type_complexity)]
    pub(super) fn get_many(b: &Bucket, keys: &[String]) -> Result<Vec<Option<(String, Vec<u8>)>>, Error> {
        batch::get_many(b, keys)
    }
    pub(super) fn set_many(b: &Bucket, pairs: &[(String, Vec<u8>)]) -> Result<(), Error> {
        batch::set_many(b, pairs)
    }
    pub(super) fn delete_many(b: &Bucket, keys: &[String]) -> Result<(), Error> {
        batch::delete_many(b, keys)
    }
    pub(super) fn list_keys(b: &Bucket, cursor: Option<u64>) -> Result<(Vec<String>, Option<u64>), Error> {
        b.list_keys(cursor).map(|r| (r.keys, r.cursor))
    }
}

/// The host-target stand-in: a thread-local in-memory store (see `testing`).
#[cfg(not(target_arch = "wasm32"))]
mod imp {
    pub(super) use crate::testing::sim::state::*;
}
