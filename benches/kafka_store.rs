//! Kafka state store harness: [`KafkaStore`] writes next to the raw
//! rdkafka client doing the same work on the same broker, in one run.
//!
//! Run: `scripts/services.sh up && set -a && . target/services/env && set +a &&
//! cargo bench --features kafka --bench kafka_store` (`KAFKA_URL` names the broker).
//! Options (env): `KAFKA_STORE_WRITERS` (concurrent writers, default 512),
//! `KAFKA_STORE_WRITES` (writes in all, default 20 000).
//!
//! A store write is acknowledged once its record is appended **and read
//! back** by the instance's follower (that is how a writer learns the fold
//! accepted it), so the baseline does the same with the raw client:
//!
//! | ours | raw rdkafka baseline |
//! |---|---|
//! | `put` of a 64-byte value to distinct keys, from N tasks at once (one instance: it owns every partition) | `FutureProducer` sends the same bytes to the key's partition; a `StreamConsumer` assigned every partition reads; each send waits until its offset is read |
//! | one `put` at a time, median of 200 | one send, then read back |
//!
//! Both: 8 partitions, `enable.idempotence=true`, `acks=all`, `linger.ms=1`,
//! `fetch.wait.max.ms=10`. Results go to stdout and `target/kafka-store-bench.json`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use multiagents::StateStore;
use multiagents::kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use multiagents::kafka::rdkafka::message::Message;
use multiagents::kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use multiagents::kafka::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use multiagents::kafka::{KafkaConfig, KafkaStore};
use serde_json::json;
use tokio::sync::watch;

#[path = "common/kafka_env.rs"]
mod kafka_env;

use kafka_env::{brokers, fresh, median, url};

const PARTITIONS: i32 = 8;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(1)
}

async fn ours() -> Arc<KafkaStore> {
    let config = KafkaConfig::from_url(&url())
        .expect("KAFKA_URL")
        .with_prefix(fresh("storebench"))
        .with_partitions(PARTITIONS)
        .with_linger(Duration::from_millis(1))
        .with_fetch_wait(Duration::from_millis(10));
    Arc::new(KafkaStore::with_config(config).await.expect("open the store"))
}

/// Ours: `writes` puts from `writers` tasks; writes/s.
async fn ours_throughput(writers: usize, writes: usize) -> f64 {
    let store = ours().await;
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (w..writes).step_by(writers) {
                    store
                        .put(&format!("k/{i}"), Bytes::from_static(&[7; 64]), None)
                        .await
                        .expect("put");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer");
    }
    let rate = writes as f64 / start.elapsed().as_secs_f64();
    store.close().await.expect("close");
    rate
}

/// Ours: one put at a time; the median of 200.
async fn ours_idle() -> Duration {
    let store = ours().await;
    let mut samples = Vec::new();
    for i in 0..200 {
        let start = Instant::now();
        store
            .put(&format!("k/{i}"), Bytes::from_static(&[7; 64]), None)
            .await
            .expect("put");
        samples.push(start.elapsed());
    }
    store.close().await.expect("close");
    median(samples)
}

/// The raw baseline: a producer, and a reader of every partition saying
/// how far it has read each.
struct Raw {
    topic: String,
    producer: FutureProducer,
    read: Arc<Vec<watch::Sender<i64>>>,
}

impl Raw {
    async fn new() -> Raw {
        let topic = fresh("rawstore");
        kafka_env::create_topic(&topic, PARTITIONS).await;
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "1")
            .create()
            .expect("raw producer");
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .set("group.id", fresh("rawreader"))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .expect("raw consumer");
        let mut list = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            list.add_partition_offset(&topic, p, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&list).expect("assign");
        let read: Arc<Vec<watch::Sender<i64>>> =
            Arc::new((0..PARTITIONS).map(|_| watch::Sender::new(0)).collect());
        let progress = read.clone();
        tokio::spawn(async move {
            loop {
                let Ok(m) = consumer.recv().await else { continue };
                if let Some(w) = progress.get(m.partition() as usize) {
                    w.send_replace(m.offset() + 1);
                }
            }
        });
        Raw {
            topic,
            producer,
            read,
        }
    }

    /// Sends one record to `key`'s partition and waits until it is read back.
    async fn write(&self, key: &str) {
        let p = (key.len() as i32 + key.as_bytes().last().copied().unwrap_or(0) as i32) % PARTITIONS;
        let delivery = self
            .producer
            .send(
                FutureRecord::to(&self.topic)
                    .partition(p)
                    .key(key)
                    .payload(&[7u8; 64][..]),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("raw send");
        let mut rx = self.read[p as usize].subscribe();
        rx.wait_for(|next| *next > delivery.offset)
            .await
            .expect("read back");
    }
}

async fn raw_throughput(writers: usize, writes: usize) -> f64 {
    let raw = Arc::new(Raw::new().await);
    raw.write("warm").await;
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let raw = raw.clone();
            tokio::spawn(async move {
                for i in (w..writes).step_by(writers) {
                    raw.write(&format!("k/{i}")).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer");
    }
    writes as f64 / start.elapsed().as_secs_f64()
}

async fn raw_idle() -> Duration {
    let raw = Raw::new().await;
    raw.write("warm").await;
    let mut samples = Vec::new();
    for i in 0..200 {
        let start = Instant::now();
        raw.write(&format!("k/{i}")).await;
        samples.push(start.elapsed());
    }
    median(samples)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let writers = env_number("KAFKA_STORE_WRITERS", 512);
    let writes = env_number("KAFKA_STORE_WRITES", 20_000);
    let raw = raw_throughput(writers, writes).await;
    let ours_rate = ours_throughput(writers, writes).await;
    println!(
        "kafka-store/writes: ours {ours_rate:.0} writes/s, raw rdkafka append+read-back {raw:.0}/s ({:.2}× raw), {writers} writers, {writes} writes",
        ours_rate / raw
    );
    let raw_lat = raw_idle().await;
    let ours_lat = ours_idle().await;
    println!(
        "kafka-store/idle: ours {ours_lat:?}, raw rdkafka {raw_lat:?} ({:.2}× raw), one write at a time, median of 200",
        ours_lat.as_secs_f64() / raw_lat.as_secs_f64()
    );
    let report = json!({
        "writers": writers,
        "writes": writes,
        "throughput": {"ours": ours_rate, "raw": raw},
        "idle_us": {"ours": ours_lat.as_micros() as u64, "raw": raw_lat.as_micros() as u64},
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/kafka-store-bench.json");
    if let Err(e) = std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap_or_default()) {
        eprintln!("cannot write {}: {e}", path.display());
    }
}
