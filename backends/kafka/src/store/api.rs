//! The [`StateStore`] methods of [`KafkaStore`]: reads from the view,
//! writes through the key's partition writer (here, or forwarded).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use multiagents_core::scheduler::{Scheduler, TimerChange};
use multiagents_core::{
    Error, ErrorKind, Expected, PutEntry, Result, ScanPage, StateStore, StoreCapabilities, Version,
    Versioned, validate,
};
use tokio::sync::oneshot;

use super::decide::{Done, Write};
use super::record::partition_of;
use super::writer::{Job, Work};
use super::{Inner, KafkaStore, now_ms};

impl Inner {
    /// The largest value: a record's bytes less room for its key and headers.
    fn max_value(&self) -> usize {
        self.core.config.wire_max().saturating_sub(8 * 1024)
    }

    fn check_write(
        &self,
        op: &'static str,
        key: &str,
        value: Option<&Bytes>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        validate::key(key).map_err(|e| e.with_operation(op))?;
        validate::ttl(ttl).map_err(|e| e.with_operation(op).with_context("key", key))?;
        if let Some(value) = value {
            validate::size("value", value.len(), self.max_value())
                .map_err(|e| e.with_operation(op).with_context("key", key))?;
        }
        Ok(())
    }

    pub(crate) fn check_open(&self, op: &'static str) -> Result<()> {
        if self.core.closed.is_cancelled() {
            return Err(crate::error::closed(op));
        }
        Ok(())
    }

    /// Has `write` done by its partition's writer: this instance's, or the
    /// owner's it is forwarded to.
    pub(crate) async fn write(&self, op: &'static str, write: Write) -> Result<Done> {
        self.check_open(op)?;
        let p = partition_of(write.key(), self.core.partitions);
        if let Some(jobs) = self.owned.jobs(p) {
            let (reply, answer) = oneshot::channel();
            let job = Job {
                work: Work::Write(write.clone()),
                request: None,
                reply,
            };
            let unknown = |why: &str| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("kafka store: partition {p}'s writer {why}; the write may or may not be applied"),
                )
                .with_operation(op)
                .with_context("key", write.key())
            };
            let limit = self.core.forward_timeout;
            let asked = tokio::time::timeout(limit, async {
                jobs.send(job).await.ok()?;
                Some(answer.await)
            })
            .await;
            match asked {
                Ok(Some(Ok(result))) => return result.map_err(|e| e.with_operation(op)),
                Ok(Some(Err(_))) => return Err(unknown("stopped before answering")),
                Err(_) => {
                    return Err(unknown(&format!("did not answer within {limit:?}")).with_retryable(true));
                }
                // The writer stopped before taking it: its partition moved.
                Ok(None) => {}
            }
        }
        self.remote.call(p, write).await.map_err(|e| e.with_operation(op))
    }

    fn read(&self, key: &str) -> Option<Versioned> {
        let view = self.core.view.read().ok()?;
        view.get(key, now_ms()).map(|e| Versioned {
            value: e.value.clone(),
            version: Version(e.version),
        })
    }
}

#[async_trait]
impl StateStore for KafkaStore {
    fn capabilities(&self) -> StoreCapabilities {
        let mut caps = StoreCapabilities::full("kafka", self.inner.max_value());
        // A batch's keys go to their partitions' writers: one round trip
        // per partition, not one for the batch.
        caps.batch_put = false;
        caps
    }

    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        const OP: &str = "kafka.store.get";
        validate::key(key).map_err(|e| e.with_operation(OP))?;
        self.inner.check_open(OP)?;
        Ok(self.inner.read(key))
    }

    async fn get_fresh(&self, key: &str) -> Result<Option<Versioned>> {
        const OP: &str = "kafka.store.get_fresh";
        validate::key(key).map_err(|e| e.with_operation(OP))?;
        self.inner.check_open(OP)?;
        self.inner
            .barrier(partition_of(key, self.inner.core.partitions))
            .await
            .map_err(|e| e.with_operation(OP).with_context("key", key))?;
        Ok(self.inner.read(key))
    }

    async fn put(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<Version> {
        const OP: &str = "kafka.store.put";
        self.inner.check_write(OP, key, Some(&value), ttl)?;
        let write = Write::Put {
            key: key.to_string(),
            value,
            ttl,
        };
        Ok(self.inner.write(OP, write).await?.version)
    }

    async fn put_batch(&self, entries: Vec<PutEntry>) -> Result<Vec<Version>> {
        const OP: &str = "kafka.store.put_batch";
        for (i, e) in entries.iter().enumerate() {
            self.inner
                .check_write(OP, &e.key, Some(&e.value), e.ttl)
                .map_err(|err| err.with_context("index", i))?;
        }
        // Each partition's entries in order (a repeated key keeps its last
        // write); the partitions at once.
        let mut by_partition: BTreeMap<i32, Vec<(usize, PutEntry)>> = BTreeMap::new();
        let n = entries.len();
        for (i, e) in entries.into_iter().enumerate() {
            by_partition
                .entry(partition_of(&e.key, self.inner.core.partitions))
                .or_default()
                .push((i, e));
        }
        let runs = by_partition.into_values().map(|run| async move {
            let mut out = Vec::with_capacity(run.len());
            for (i, e) in run {
                let write = Write::Put {
                    key: e.key,
                    value: e.value,
                    ttl: e.ttl,
                };
                out.push((i, self.inner.write(OP, write).await?.version));
            }
            Ok::<_, Error>(out)
        });
        let mut versions = vec![Version::PENDING; n];
        for run in futures_util::future::try_join_all(runs).await? {
            for (i, v) in run {
                if let Some(slot) = versions.get_mut(i) {
                    *slot = v;
                }
            }
        }
        Ok(versions)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        const OP: &str = "kafka.store.delete";
        self.inner.check_write(OP, key, None, None)?;
        let done = self
            .inner
            .write(OP, Write::Delete { key: key.to_string() })
            .await?;
        Ok(done.existed)
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
        Some(Arc::new(super::scheduler::KafkaScheduler::new(
            self.inner.clone(),
        )))
    }

    async fn compare_and_swap_timed(
        &self,
        key: &str,
        expected: Expected,
        value: Bytes,
        ttl: Option<Duration>,
        timer: TimerChange,
    ) -> Result<Version> {
        const OP: &str = "kafka.store.compare_and_swap";
        self.inner.check_write(OP, key, Some(&value), ttl)?;
        let write = Write::Cas {
            key: key.to_string(),
            expected,
            value,
            ttl,
            timer,
        };
        Ok(self.inner.write(OP, write).await?.version)
    }

    async fn scan(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<ScanPage> {
        const OP: &str = "kafka.store.scan";
        validate::prefix(prefix).map_err(|e| e.with_operation(OP))?;
        validate::scan_limit(limit).map_err(|e| e.with_operation(OP))?;
        self.inner.check_open(OP)?;
        let view = self.inner.core.view(OP)?;
        let (page, more) = view.scan(prefix, cursor, limit, now_ms());
        let cursor = if more {
            page.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        let entries = page
            .into_iter()
            .map(|(k, e)| {
                (
                    k,
                    Versioned {
                        value: e.value,
                        version: Version(e.version),
                    },
                )
            })
            .collect();
        Ok(ScanPage { entries, cursor })
    }

    async fn close(&self) -> Result<()> {
        self.inner.shut();
        Ok(())
    }
}
