//! Unit-testing workers on the host (not available on the wasm target).
//!
//! Off `wasm32` the SDK's imports are served by a simulated host kept in
//! thread-local storage, so a worker's handler can be tested with plain
//! `cargo test` (each test thread sees its own state):
//!
//! * `state` buckets are in-memory maps; any bucket name opens, except those
//!   passed to [`deny_bucket`]. Counters are stored as decimal ASCII, as the
//!   real host does.
//! * `config` reads the table set with [`set_config`].
//! * `emit` records events, read back with [`emitted`]; topics passed to
//!   [`deny_topic`] are rejected.
//! * `log` records go to [`logs`] and to stderr.
//!
//! [`invoke`](crate::invoke) runs a handler through the same CBOR decoding
//! and encoding as the host:
//!
//! ```
//! use multiagents_worker::prelude::*;
//! use multiagents_worker::{testing, Call, invoke};
//!
//! fn double(_call: &Call, n: u64) -> Result<u64, WorkerError> {
//!     let calls = state::open("stats")?.increment("calls", 1)?;
//!     info!("call #{calls}");
//!     Ok(n * 2)
//! }
//!
//! testing::reset();
//! let call = Call::new("tx-1", "wf", "double", 1);
//! let out = invoke(&call, &multiagents_worker::codec::to_cbor(&21u64).unwrap(), double).unwrap();
//! assert_eq!(multiagents_worker::codec::from_cbor::<u64>(&out).unwrap(), 42);
//! assert_eq!(testing::bucket("stats")["calls"], b"1");
//! ```

use std::collections::BTreeMap;

pub use crate::log::Level;

/// One record logged through [`crate::log`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Its level.
    pub level: Level,
    /// Its context (target).
    pub context: String,
    /// Its message.
    pub message: String,
}

/// One event published through [`crate::emit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The topic.
    pub topic: String,
    /// The payload bytes (CBOR for [`crate::emit()`]).
    pub payload: Vec<u8>,
}

impl Event {
    /// The payload decoded from CBOR.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::codec::CodecError> {
        crate::codec::from_cbor(&self.payload)
    }
}

/// Clears this thread's simulated host: buckets, config, events, logs, denials.
pub fn reset() {
    sim::with(|s| *s = sim::Sim::default());
}

/// Sets a configuration key for this thread.
pub fn set_config(key: impl Into<String>, value: impl Into<String>) {
    sim::with(|s| s.config.insert(key.into(), value.into()));
}

/// Makes `state::open(name)` fail with `AccessDenied` on this thread.
pub fn deny_bucket(name: impl Into<String>) {
    sim::with(|s| s.denied_buckets.push(name.into()));
}

/// Makes `emit` to `topic` fail on this thread, as the host does for a topic
/// the registration does not permit.
pub fn deny_topic(topic: impl Into<String>) {
    sim::with(|s| s.denied_topics.push(topic.into()));
}

/// A copy of the contents of bucket `name` on this thread (empty if never opened).
pub fn bucket(name: &str) -> BTreeMap<String, Vec<u8>> {
    sim::with(|s| s.buckets.get(name).cloned().unwrap_or_default())
}

/// The events emitted on this thread so far, oldest first.
pub fn emitted() -> Vec<Event> {
    sim::with(|s| s.events.clone())
}

/// The records logged on this thread so far, oldest first.
pub fn logs() -> Vec<LogRecord> {
    sim::with(|s| s.logs.clone())
}

/// The simulated host the SDK's wrappers call off the wasm target.
pub(crate) mod sim {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::{Event, LogRecord};

    #[derive(Default)]
    pub(crate) struct Sim {
        pub(crate) buckets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
        pub(crate) config: BTreeMap<String, String>,
        pub(crate) denied_buckets: Vec<String>,
        pub(crate) denied_topics: Vec<String>,
        pub(crate) events: Vec<Event>,
        pub(crate) logs: Vec<LogRecord>,
    }

    thread_local! {
        static SIM: RefCell<Sim> = RefCell::new(Sim::default());
    }

    pub(crate) fn with<R>(f: impl FnOnce(&mut Sim) -> R) -> R {
        SIM.with(|s| f(&mut s.borrow_mut()))
    }

    pub(crate) mod state {
        use super::with;

        pub(crate) struct Bucket(String);

        pub(crate) enum Error {
            AccessDenied,
            Other(String),
        }

        pub(crate) fn to_state_error(e: Error, bucket: &str) -> crate::state::StateError {
            match e {
                Error::AccessDenied => crate::state::StateError::AccessDenied {
                    bucket: bucket.to_owned(),
                },
                Error::Other(m) => crate::state::StateError::Store(m),
            }
        }

        pub(crate) fn open(name: &str) -> Result<Bucket, Error> {
            with(|s| {
                if s.denied_buckets.iter().any(|d| d == name) {
                    return Err(Error::AccessDenied);
                }
                s.buckets.entry(name.to_owned()).or_default();
                Ok(Bucket(name.to_owned()))
            })
        }

        fn on<R>(b: &Bucket, f: impl FnOnce(&mut std::collections::BTreeMap<String, Vec<u8>>) -> R) -> R {
            with(|s| f(s.buckets.entry(b.0.clone()).or_default()))
        }

        pub(crate) fn get(b: &Bucket, key: &str) -> Result<Option<Vec<u8>>, Error> {
            Ok(on(b, |m| m.get(key).cloned()))
        }

        pub(crate) fn set(b: &Bucket, key: &str, value: &[u8]) -> Result<(), Error> {
            on(b, |m| m.insert(key.to_owned(), value.to_vec()));
            Ok(())
        }

        pub(crate) fn delete(b: &Bucket, key: &str) -> Result<(), Error> {
            on(b, |m| m.remove(key));
            Ok(())
        }

        pub(crate) fn exists(b: &Bucket, key: &str) -> Result<bool, Error> {
            Ok(on(b, |m| m.contains_key(key)))
        }

        pub(crate) fn increment(b: &Bucket, key: &str, delta: u64) -> Result<u64, Error> {
            on(b, |m| {
                let current = match m.get(key) {
                    None => 0,
                    Some(v) => std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or_else(|| Error::Other(format!("value at `{key}` is not a counter")))?,
                };
                let new = current
                    .checked_add(delta)
                    .ok_or_else(|| Error::Other(format!("counter `{key}` overflowed")))?;
                m.insert(key.to_owned(), new.to_string().into_bytes());
                Ok(new)
            })
        }

        #[allow(clippy::type_complexity)]
        pub(crate) fn get_many(b: &Bucket, keys: &[String]) -> Result<Vec<Option<(String, Vec<u8>)>>, Error> {
            Ok(on(b, |m| {
                keys.iter()
                    .map(|k| m.get(k).map(|v| (k.clone(), v.clone())))
                    .collect()
            }))
        }

        pub(crate) fn set_many(b: &Bucket, pairs: &[(String, Vec<u8>)]) -> Result<(), Error> {
            on(b, |m| m.extend(pairs.iter().cloned()));
            Ok(())
        }

        pub(crate) fn delete_many(b: &Bucket, keys: &[String]) -> Result<(), Error> {
            on(b, |m| keys.iter().for_each(|k| drop(m.remove(k))));
            Ok(())
        }

        /// Pages of 2 keys, so tests exercise the cursor loop.
        pub(crate) fn list_keys(
            b: &Bucket,
            cursor: Option<u64>,
        ) -> Result<(Vec<String>, Option<u64>), Error> {
            const PAGE: usize = 2;
            on(b, |m| {
                let start = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
                let keys: Vec<String> = m.keys().skip(start).take(PAGE).cloned().collect();
                let next = (start + keys.len() < m.len()).then(|| (start + keys.len()) as u64);
                Ok((keys, next))
            })
        }
    }

    pub(crate) mod config {
        use super::with;
        use crate::config::ConfigError;

        pub(crate) fn get(key: &str) -> Result<Option<String>, ConfigError> {
            Ok(with(|s| s.config.get(key).cloned()))
        }

        pub(crate) fn get_all() -> Result<Vec<(String, String)>, ConfigError> {
            Ok(with(|s| {
                s.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
            }))
        }
    }

    pub(crate) mod log {
        use super::{LogRecord, with};
        use crate::log::Level;

        pub(crate) fn log(level: Level, context: &str, message: &str) {
            eprintln!("[{level:?} {context}] {message}");
            with(|s| {
                s.logs.push(LogRecord {
                    level,
                    context: context.to_owned(),
                    message: message.to_owned(),
                })
            });
        }
    }

    pub(crate) mod emit {
        use super::{Event, with};

        pub(crate) fn emit(topic: &str, payload: &[u8]) -> Result<(), String> {
            with(|s| {
                if s.denied_topics.iter().any(|t| t == topic) {
                    return Err(format!("topic `{topic}` is not permitted"));
                }
                s.events.push(Event {
                    topic: topic.to_owned(),
                    payload: payload.to_vec(),
                });
                Ok(())
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state;

    #[test]
    fn state_round_trips_and_counts() {
        reset();
        let b = state::open("inv").unwrap();
        assert_eq!(b.get("k").unwrap(), None);
        b.set("k", b"v").unwrap();
        assert!(b.exists("k").unwrap());
        assert_eq!(b.increment("c", 5).unwrap(), 5);
        assert_eq!(b.increment("c", 2).unwrap(), 7);
        assert_eq!(b.counter("c").unwrap(), 7);
        assert_eq!(b.get("c").unwrap().as_deref(), Some(&b"7"[..]));
        assert!(matches!(b.increment("k", 1), Err(state::StateError::Store(_))));
        b.set_typed("t", &vec![1u32, 2, 3]).unwrap();
        assert_eq!(b.get_typed::<Vec<u32>>("t").unwrap(), Some(vec![1, 2, 3]));
        assert!(matches!(
            b.get_typed::<String>("t"),
            Err(state::StateError::Codec { .. })
        ));
        b.set_many(&[("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())])
            .unwrap();
        let got = b.get_many(&["a".into(), "zz".into(), "b".into()]).unwrap();
        assert_eq!(got, vec![Some(b"1".to_vec()), None, Some(b"2".to_vec())]);
        let mut keys = b.keys().unwrap();
        keys.sort();
        assert_eq!(keys, ["a", "b", "c", "k", "t"]);
        b.delete_many(&["a".into(), "b".into()]).unwrap();
        b.delete("k").unwrap();
        assert_eq!(b.keys().unwrap(), ["c", "t"]);
    }

    #[test]
    fn denials_map_to_fatal_and_retryable() {
        reset();
        deny_bucket("secret");
        let err = state::open("secret").unwrap_err();
        assert!(matches!(err, state::StateError::AccessDenied { .. }));
        assert!(crate::WorkerError::from(err).is_fatal());

        deny_topic("admin.reset");
        let err = crate::emit("admin.reset", &1u8).unwrap_err();
        assert!(crate::WorkerError::from(err).is_retryable());
        crate::emit("orders.shipped", &("o-1", 2u8)).unwrap();
        let events = emitted();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].topic, "orders.shipped");
        assert_eq!(events[0].decode::<(String, u8)>().unwrap(), ("o-1".to_owned(), 2));
    }
}
