//! librdkafka's blocking calls (cluster metadata, partition watermarks),
//! run off the async threads.

use std::time::Duration;

use multiagents_core::{Error, ErrorKind, Result};
use rdkafka::consumer::{Consumer, ConsumerContext};

/// Runs `f` on a blocking thread.
///
/// # Errors
/// `f`'s error; `Unexpected` when the thread panicked or was cancelled.
pub(crate) async fn off_runtime<T, F>(op: &'static str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::new(ErrorKind::Unexpected, format!("kafka: {e}")).with_operation(op))?
}

/// How many partitions each of `topics` has, from their metadata
/// (blocking); 0 for a topic the brokers do not report.
///
/// # Errors
/// The brokers' errors, naming the topic.
pub(crate) fn partition_counts<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    topics: &[String],
    timeout: Duration,
    op: &'static str,
) -> Result<Vec<usize>> {
    topics
        .iter()
        .map(|name| {
            let metadata = consumer
                .fetch_metadata(Some(name), timeout)
                .map_err(|e| crate::error::kafka(op, e).with_context("topic", name))?;
            Ok(metadata
                .topics()
                .iter()
                .find(|t| t.name() == name)
                .map_or(0, |t| t.partitions().len()))
        })
        .collect()
}

/// Each partition of `topic` with its low and high watermarks (blocking).
///
/// # Errors
/// The brokers' errors, naming the topic.
pub(crate) fn watermarks<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    topic: &str,
    timeout: Duration,
    op: &'static str,
) -> Result<Vec<(i32, i64, i64)>> {
    let failed = |e| crate::error::kafka(op, e).with_context("topic", topic);
    let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(failed)?;
    let mut out = Vec::new();
    for p in metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions())
    {
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), timeout)
            .map_err(failed)?;
        out.push((p.id(), low, high));
    }
    Ok(out)
}
