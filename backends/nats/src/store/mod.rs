//! [`NatsStore`]: the [`StateStore`] on a JetStream KV bucket
//! (`<prefix>_state`, file storage, one revision kept per key).
//!
//! * **Keys** are any UTF-8; they are stored under an order-preserving
//!   encoding into KV's alphabet (see `names::encode_key`).
//! * **Versions** are KV revisions (the bucket's stream sequence), so a
//!   later write of a key always has a greater version.
//! * **Compare-and-swap** is a publish with
//!   `Nats-Expected-Last-Subject-Sequence`: the server refuses it unless the
//!   key's last message is the expected one (`0`, or a delete marker, for
//!   "absent").
//! * **TTL** is a per-message `Nats-TTL` header (nats-server 2.11+), in whole
//!   seconds: a TTL is rounded *up* to the next second, never expiring
//!   earlier than asked. An expired key leaves a delete marker, which reads
//!   as absent.
//! * **Delete** writes a delete marker that itself expires after
//!   [`MARKER_TTL`], so deleted keys leave nothing behind for long.
//! * **Scan** lists the bucket's live keys (`keys()`, one message per key),
//!   keeps those under the prefix, sorts them and reads one page: a page
//!   costs a listing of the whole bucket, so scans suit operations tools,
//!   not hot paths (the orchestrator does not scan).
//! * No [`Scheduler`](multiagents_core::scheduler::Scheduler): the
//!   orchestrator keeps its timers on the transport (nacks with a delay).

mod scan;

use std::fmt;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_TTL;
use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::message::PublishMessage as Publish;
use async_nats::jetstream::stream::StorageType;
use async_trait::async_trait;
use bytes::Bytes;
use multiagents_core::store::conflict;
use multiagents_core::{
    Error, ErrorKind, Expected, PutEntry, Result, ScanPage, StateStore, StoreCapabilities, Version,
    Versioned, validate,
};

use crate::config::NatsConfig;
use crate::connection::Conn;
use crate::error;
use crate::names::encode_key;

/// How long a delete marker stays (it reads as absent; then it is gone).
pub const MARKER_TTL: Duration = Duration::from_secs(600);
/// How long a limit marker (left by an expired key) stays.
const LIMIT_MARKER_TTL: Duration = Duration::from_secs(60);
/// Rounds of "the key was deleted meanwhile" a CAS retries before giving up.
const ABSENT_ROUNDS: usize = 4;

/// The state store on a NATS KV bucket; see the [module docs](self). Cheap
/// to clone.
#[derive(Clone)]
pub struct NatsStore {
    conn: Conn,
    kv: kv::Store,
    max_value: usize,
}

impl fmt::Debug for NatsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsStore")
            .field("config", &self.conn.config)
            .finish_non_exhaustive()
    }
}

impl NatsStore {
    /// Connects with the defaults of [`NatsConfig::new`], overridden by the
    /// options in `url`'s query ([`NatsConfig::from_url`]).
    ///
    /// # Errors
    /// As [`with_config`](Self::with_config).
    pub async fn connect(url: &str) -> Result<NatsStore> {
        Self::with_config(NatsConfig::from_url(url)?).await
    }

    /// Connects with `config`, creating the bucket when missing.
    ///
    /// # Errors
    /// As [`NatsTransport::with_config`](crate::NatsTransport::with_config).
    pub async fn with_config(config: NatsConfig) -> Result<NatsStore> {
        let conn = Conn::open(config).await?;
        let bucket = conn.names.state_bucket();
        let kv_config = kv::Config {
            bucket: bucket.clone(),
            history: 1,
            storage: StorageType::File,
            num_replicas: conn.config.replicas,
            // Turns on per-message TTLs; expired keys leave a marker this long.
            limit_markers: Some(LIMIT_MARKER_TTL),
            ..Default::default()
        };
        let kv = conn.js.create_or_update_key_value(kv_config).await.map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot create the NATS bucket {bucket}: {e}"),
            )
            .with_operation("nats.connect")
            .with_source(e)
        })?;
        let max_value = conn.max_payload(4096);
        Ok(NatsStore { conn, kv, max_value })
    }

    /// The settings in use.
    pub fn config(&self) -> &NatsConfig {
        &self.conn.config
    }

    fn subject(&self, key: &str) -> String {
        format!("{}{}", self.kv.prefix, encode_key(key))
    }

    fn check_write(&self, op: &'static str, key: &str, value: &Bytes, ttl: Option<Duration>) -> Result<()> {
        validate::key(key).map_err(|e| e.with_operation(op))?;
        validate::ttl(ttl).map_err(|e| e.with_operation(op).with_context("key", key))?;
        validate::size("value", value.len(), self.max_value)
            .map_err(|e| e.with_operation(op).with_context("key", key))
    }

    /// The key's live entry: `None` when missing, deleted or expired.
    async fn entry(&self, op: &'static str, key: &str) -> Result<Option<kv::Entry>> {
        self.conn.check_open(op)?;
        let entry = self
            .kv
            .entry(encode_key(key))
            .await
            .map_err(|e| error::other(op, e).with_context("key", key))?;
        Ok(entry)
    }

    /// Publishes a write of `key`; `expected` is the last subject sequence
    /// the server must find (`Some(0)`: none), `ttl` the value's lifetime.
    async fn write(
        &self,
        op: &'static str,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        expected: Option<u64>,
        headers: HeaderMap,
    ) -> Result<Version> {
        let message = self.message(value, ttl, expected, headers);
        let acks = self
            .conn
            .publish_all(op, vec![(self.subject(key), message)], |_| {
                ("key", key.to_string())
            })
            .await?;
        acks.first().map(|a| Version(a.sequence)).ok_or_else(|| {
            Error::new(ErrorKind::Unexpected, "a publish returned no acknowledgement").with_operation(op)
        })
    }

    /// A write's message: the value, its TTL, the expected last revision.
    fn message(
        &self,
        value: Bytes,
        ttl: Option<Duration>,
        expected: Option<u64>,
        mut headers: HeaderMap,
    ) -> Publish {
        if let Some(ttl) = ttl {
            headers.insert(NATS_MESSAGE_TTL, whole_seconds(ttl).as_str());
        }
        let mut publish = Publish::build().payload(value).headers(headers);
        if let Some(seq) = expected {
            publish = publish.expected_last_subject_sequence(seq);
        }
        publish
    }

    /// A CAS expecting the key absent: `0`, or whatever delete marker
    /// stands for its absence (re-read after each refusal).
    async fn create(
        &self,
        op: &'static str,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<Version> {
        let mut expected = 0;
        for _ in 0..ABSENT_ROUNDS {
            match self
                .write(op, key, value.clone(), ttl, Some(expected), HeaderMap::new())
                .await
            {
                Err(e) if e.kind() == ErrorKind::Conflict => match self.entry(op, key).await? {
                    Some(entry) if entry.operation == Operation::Put => {
                        return Err(
                            conflict(key, Expected::Absent, Some(Version(entry.revision))).with_operation(op)
                        );
                    }
                    Some(marker) => expected = marker.revision,
                    None => expected = 0,
                },
                done => return done,
            }
        }
        Err(conflict(key, Expected::Absent, None)
            .with_operation(op)
            .with_context("why", "the key kept changing between absent states"))
    }
}

/// `Nats-TTL` in whole seconds, rounded up (at least 1).
fn whole_seconds(ttl: Duration) -> String {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    secs.max(1).to_string()
}

/// Headers of a delete marker.
fn delete_marker() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("KV-Operation", "DEL");
    headers
}

#[async_trait]
impl StateStore for NatsStore {
    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::full("nats", self.max_value)
    }

    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        const OP: &str = "nats.get";
        validate::key(key).map_err(|e| e.with_operation(OP))?;
        Ok(self.entry(OP, key).await?.and_then(|entry| {
            (entry.operation == Operation::Put).then(|| Versioned {
                value: entry.value,
                version: Version(entry.revision),
            })
        }))
    }

    async fn put(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<Version> {
        const OP: &str = "nats.put";
        self.check_write(OP, key, &value, ttl)?;
        self.write(OP, key, value, ttl, None, HeaderMap::new()).await
    }

    async fn put_batch(&self, entries: Vec<PutEntry>) -> Result<Vec<Version>> {
        const OP: &str = "nats.put_batch";
        for (i, e) in entries.iter().enumerate() {
            self.check_write(OP, &e.key, &e.value, e.ttl)
                .map_err(|err| err.with_context("index", i))?;
        }
        let mut messages = Vec::with_capacity(entries.len());
        for e in &entries {
            messages.push((
                self.subject(&e.key),
                self.message(e.value.clone(), e.ttl, None, HeaderMap::new()),
            ));
        }
        let acks = self
            .conn
            .publish_all(OP, messages, |i| ("key", entries[i].key.clone()))
            .await?;
        Ok(acks.into_iter().map(|a| Version(a.sequence)).collect())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        const OP: &str = "nats.delete";
        validate::key(key).map_err(|e| e.with_operation(OP))?;
        for _ in 0..ABSENT_ROUNDS {
            let Some(entry) = self.entry(OP, key).await? else {
                return Ok(false);
            };
            if entry.operation != Operation::Put {
                return Ok(false);
            }
            let marker = self
                .write(
                    OP,
                    key,
                    Bytes::new(),
                    Some(MARKER_TTL),
                    Some(entry.revision),
                    delete_marker(),
                )
                .await;
            match marker {
                Ok(_) => return Ok(true),
                // Written meanwhile: read again and delete that.
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::Conflict,
            "the key kept changing while it was being deleted",
        )
        .with_operation(OP)
        .with_context("key", key))
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Expected,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<Version> {
        const OP: &str = "nats.compare_and_swap";
        self.check_write(OP, key, &value, ttl)?;
        match expected {
            Expected::Absent => self.create(OP, key, value, ttl).await,
            Expected::Version(v) => {
                match self.write(OP, key, value, ttl, Some(v.0), HeaderMap::new()).await {
                    Err(e) if e.kind() == ErrorKind::Conflict => {
                        let actual = self.get(key).await.ok().flatten().map(|found| found.version);
                        Err(conflict(key, expected, actual).with_operation(OP))
                    }
                    done => done,
                }
            }
        }
    }

    async fn scan(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<ScanPage> {
        self.scan_page(prefix, cursor, limit).await
    }

    async fn close(&self) -> Result<()> {
        self.conn.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::from_millis(300)), "1");
        assert_eq!(whole_seconds(Duration::from_millis(1000)), "1");
        assert_eq!(whole_seconds(Duration::from_millis(1001)), "2");
        assert_eq!(whole_seconds(Duration::from_secs(90)), "90");
    }
}
