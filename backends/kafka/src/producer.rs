//! The idempotent producer, kept usable. After a *fatal* error (the broker
//! fenced its producer id, a sequence gap it cannot repair) librdkafka
//! fails every later send of that producer at once, for good: an instance
//! would go on serving with every publish and store write refused. Found by
//! the Kafka chaos run, where Tansu fenced the producers of two instances
//! out of three ("ProducerFenced: there is a newer producer with the same
//! transactionalId", though they have none) and neither wrote again.
//!
//! So senders take the current producer from a [`Producer`] and, when a
//! send fails, hand it back to [`Producer::failed`] once every record of
//! the send has its outcome: if librdkafka reports a fatal error on it, or
//! the broker refused a record as fenced (Tansu does that to every record
//! of a producer after a restart, seen for 90 s on end, while librdkafka
//! does not call it fatal), a new producer (a new id, fresh sequences)
//! replaces it, once however many senders saw it fail, and at most once a
//! second. The failed send returns
//! its retryable error as before; whatever the caller sends next goes out
//! on the new producer.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use multiagents_core::Result;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, Producer as _};

use crate::config::KafkaConfig;

/// The producer a transport or store sends with, replaced after a fatal
/// error.
pub(crate) struct Producer {
    config: KafkaConfig,
    current: RwLock<Current>,
    replaced: AtomicU64,
}

struct Current {
    producer: FutureProducer,
    /// When it replaced the one before (the first: as if a pause ago).
    since: Instant,
}

/// The least time between two replacements (a broker that fences every
/// new producer gets a new one a second, not one per failed send).
const REPLACE_EVERY: Duration = Duration::from_secs(1);

impl Producer {
    /// An idempotent producer ([`crate::client::producer`]).
    ///
    /// # Errors
    /// Creating it (a bad option).
    pub(crate) fn new(config: &KafkaConfig) -> Result<Producer> {
        let current = Current {
            producer: crate::client::producer(config)?,
            since: Instant::now()
                .checked_sub(REPLACE_EVERY)
                .unwrap_or_else(Instant::now),
        };
        Ok(Producer {
            current: RwLock::new(current),
            config: config.clone(),
            replaced: AtomicU64::new(0),
        })
    }

    /// The producer to send with now (a cheap handle).
    pub(crate) fn get(&self) -> FutureProducer {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .producer
            .clone()
    }

    /// Runs `send` with the current producer; if it fails, [`failed`](Self::failed).
    ///
    /// # Errors
    /// `send`'s.
    pub(crate) async fn send<T, E, F, Fut>(&self, send: F) -> std::result::Result<T, E>
    where
        F: FnOnce(FutureProducer) -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: SendError,
    {
        let used = self.get();
        let sent = send(used.clone()).await;
        if let Err(e) = &sent {
            self.failed(used, e.fenced());
        }
        sent
    }

    /// After a send with `used` failed: replaces it if librdkafka reports a
    /// fatal error on it or the broker refused a record as `fenced` (once,
    /// whoever else saw it fail; at most once a second), and lets go of
    /// `used` off the runtime if it is no longer current (dropping a
    /// producer joins its threads and flushes).
    pub(crate) fn failed(&self, used: FutureProducer, fenced: bool) {
        if let Some((code, reason)) = used.client().fatal_error() {
            self.replace(&used, code, &reason);
        } else if fenced {
            self.replace(
                &used,
                RDKafkaErrorCode::ProducerFenced,
                "the broker refused a record as fenced",
            );
        }
        let current = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .producer
            .client()
            .native_ptr();
        if current != used.client().native_ptr()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn_blocking(move || drop(used));
        }
    }

    fn replace(&self, used: &FutureProducer, code: RDKafkaErrorCode, reason: &str) {
        // Only plain assignments happen under the lock: its data is sound
        // even if a panic poisoned it.
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.producer.client().native_ptr() != used.client().native_ptr() {
            return; // already replaced
        }
        if current.since.elapsed() < REPLACE_EVERY {
            return; // the next failure after the pause replaces it
        }
        match crate::client::producer(&self.config) {
            Ok(fresh) => {
                let old = std::mem::replace(
                    &mut *current,
                    Current {
                        producer: fresh,
                        since: Instant::now(),
                    },
                );
                drop(current);
                drop(old); // `used` (the caller's) keeps it alive: not the last handle
                let n = self.replaced.fetch_add(1, Ordering::Relaxed) + 1;
                metrics::counter!("multiagents_kafka_producers_replaced_total").increment(1);
                tracing::warn!(?code, %reason, replaced = n,
                    "kafka: the producer can send nothing more (a fatal error, or the broker fenced it); replaced by a new one");
            }
            Err(e) => tracing::error!(error = %e, ?code, %reason,
                "kafka: the producer hit a fatal error and a new one could not be created; retrying at the next failure"),
        }
    }

    /// How many times the producer was replaced.
    #[cfg(test)]
    pub(crate) fn replaced(&self) -> u64 {
        self.replaced.load(Ordering::Relaxed)
    }
}

/// A failed send's error, as [`Producer::send`] needs to judge it.
pub(crate) trait SendError {
    /// The broker refused a record as fenced ([`crate::error::is_fenced`]).
    fn fenced(&self) -> bool;
}

impl SendError for multiagents_core::Error {
    fn fenced(&self) -> bool {
        crate::error::came_from_fenced(self)
    }
}

impl<M> SendError for (KafkaError, M) {
    fn fenced(&self) -> bool {
        crate::error::is_fenced(&self.0)
    }
}

/// Waits for every delivery in `pending`: their offsets, or the first
/// failure (the first fenced refusal, if any) once all are known (what
/// the caller does next may go out on a replaced producer, unordered with
/// what was still in flight here).
///
/// # Errors
/// The first failed delivery's error, or the first fenced refusal.
pub(crate) async fn delivered(pending: Vec<DeliveryFuture>) -> std::result::Result<Vec<i64>, KafkaError> {
    let mut offsets = Vec::with_capacity(pending.len());
    let mut failed = None;
    for future in pending {
        match future.await {
            Ok(Ok(delivery)) => offsets.push(delivery.offset),
            Ok(Err((e, _))) => {
                // A fenced refusal is the one to report: it is what gets
                // the producer replaced (`Producer::send`).
                let keep = match &failed {
                    None => true,
                    Some(first) => !crate::error::is_fenced(first) && crate::error::is_fenced(&e),
                };
                if keep {
                    failed = Some(e);
                }
            }
            Err(_) => {
                failed.get_or_insert(KafkaError::Canceled);
            }
        }
    }
    failed.map_or(Ok(offsets), Err)
}

/// The error to report when enqueuing a record failed at once (`now`)
/// after earlier records of the same send went out (`earlier`, what
/// [`delivered`] made of them): a fenced refusal among those, since that
/// is what gets the producer replaced ([`Producer::send`]); else `now`.
/// A permanent `now` (a record too large, say) then reads as the fenced
/// refusal, retryable: one retry more, on the new producer.
pub(crate) fn refused(earlier: std::result::Result<Vec<i64>, KafkaError>, now: KafkaError) -> KafkaError {
    match earlier {
        Err(e) if crate::error::is_fenced(&e) && !crate::error::is_fenced(&now) => e,
        _ => now,
    }
}

#[cfg(test)]
#[path = "producer_tests.rs"]
mod tests;
