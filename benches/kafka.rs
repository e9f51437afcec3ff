//! Kafka backend harness: our transport next to the raw rdkafka client on
//! the same broker, in one run, reported as ratios.
//!
//! Run: `scripts/services.sh up && set -a && . target/services/env && set +a &&
//! cargo bench --features kafka --bench kafka` (`KAFKA_URL` names the broker).
//! Options (env): `KAFKA_BENCH_MESSAGES` (default 100 000), `KAFKA_LINGER_MS`
//! (our producer's and the baseline's `linger.ms`, default 1),
//! `KAFKA_FETCH_WAIT_MS` (both consumers' `fetch.wait.max.ms`, default 10).
//!
//! | ours | raw rdkafka baseline (same broker, same shapes) |
//! |---|---|
//! | `publish_batch` of 256 → two queue subscribers → ack each | `FutureProducer` sends, acknowledgements awaited 256 at a time; two `StreamConsumer`s of one group storing each offset |
//! | one `publish` → deliver → ack, one at a time (idle latency, median of 200) | one send awaited → `recv` → `store_offset` |
//!
//! Both sides produce with `enable.idempotence=true`, `acks=all` and the
//! same linger; both consumers commit stored offsets every second. Results
//! go to stdout and `target/kafka-bench.json`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use multiagents::kafka::rdkafka::ClientConfig;
use multiagents::kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use multiagents::kafka::rdkafka::message::Message;
use multiagents::kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use multiagents::kafka::{KafkaConfig, KafkaTransport};
use multiagents::{Envelope, SubscribeMode, SubscribeOptions, Transport};
use serde_json::json;

#[path = "common/acking.rs"]
mod common;
#[path = "common/kafka_env.rs"]
mod kafka_env;

use kafka_env::{brokers, fresh, median, url};

const BATCH: usize = 256;

fn messages() -> u64 {
    std::env::var("KAFKA_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn linger_ms() -> u64 {
    std::env::var("KAFKA_LINGER_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// `fetch.wait.max.ms` of both sides' consumers (ours defaults to 10).
fn fetch_wait_ms() -> u64 {
    std::env::var("KAFKA_FETCH_WAIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

async fn ours() -> KafkaTransport {
    let config = KafkaConfig::from_url(&url())
        .expect("KAFKA_URL")
        .with_prefix(fresh("bench"))
        .with_partitions(4)
        .with_linger(Duration::from_millis(linger_ms()))
        .with_fetch_wait(Duration::from_millis(fetch_wait_ms()));
    KafkaTransport::with_config(config).await.expect("connect")
}

fn raw_producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", linger_ms().to_string())
        .create()
        .expect("raw producer")
}

fn raw_consumer(group: &str, topic: &str) -> StreamConsumer {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("fetch.wait.max.ms", fetch_wait_ms().to_string())
        .create()
        .expect("raw consumer");
    c.subscribe(&[topic]).expect("subscribe");
    c
}

/// Ours: batches of 256 published while two subscribers ack; messages/s.
async fn ours_throughput(n: u64) -> f64 {
    let t = ours().await;
    let (acked, tasks) = common::ack_everything(&t, "load", n).await;
    let start = Instant::now();
    let mut sent = 0;
    while sent < n {
        let k = BATCH.min((n - sent) as usize);
        let batch: Vec<Envelope> = (0..k)
            .map(|i| Envelope::new("load", format!("k{}", (sent as usize + i) % 64), vec![0u8; 64]))
            .collect();
        t.publish_batch(batch).await.expect("publish");
        sent += k as u64;
    }
    while acked.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    tasks.iter().for_each(|t| t.abort());
    t.close().await.expect("close");
    rate
}

/// The raw baseline of [`ours_throughput`]; messages/s.
async fn raw_throughput(n: u64) -> f64 {
    let topic = fresh("raw");
    let producer = raw_producer();
    let group = fresh("g");
    let consumed = Arc::new(AtomicU64::new(0));
    // Make the topic (4 partitions, like ours) before the consumers join.
    kafka_env::create_topic(&topic, 4).await;
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (consumed, topic, group) = (consumed.clone(), topic.clone(), group.clone());
        tasks.push(tokio::spawn(async move {
            let c = raw_consumer(&group, &topic);
            while consumed.load(Ordering::Relaxed) < n {
                let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(200), c.recv()).await else {
                    continue;
                };
                c.store_offset(m.topic(), m.partition(), m.offset())
                    .expect("store");
                consumed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Both consumers joined (a rebalance takes seconds on Tansu; ours waits in subscribe).
    tokio::time::sleep(Duration::from_secs(8)).await;
    let start = Instant::now();
    // The same bytes as ours on the wire: an envelope of a 64-byte payload.
    let wire = Envelope::new("load", "k0", vec![0u8; 64])
        .to_wire()
        .expect("wire");
    let mut sent = 0;
    while sent < n {
        let k = BATCH.min((n - sent) as usize);
        let futures: Vec<_> = (0..k)
            .map(|i| {
                let key = format!("k{}", (sent as usize + i) % 64);
                let producer = producer.clone();
                let topic = topic.clone();
                let wire = &wire;
                async move {
                    producer
                        .send(
                            FutureRecord::to(&topic).key(&key).payload(wire.as_slice()),
                            Duration::from_secs(10),
                        )
                        .await
                        .map(drop)
                        .map_err(|(e, _)| e)
                }
            })
            .collect();
        for r in futures_util::future::join_all(futures).await {
            r.expect("raw send");
        }
        sent += k as u64;
    }
    while consumed.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    tasks.iter().for_each(|t| t.abort());
    rate
}

/// Ours: one message at a time, publish → deliver → ack; median.
async fn ours_idle() -> Duration {
    let t = ours().await;
    let mut sub = t
        .subscribe("idle", SubscribeMode::queue("g"), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let mut samples = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        t.publish(Envelope::new("idle", "k", vec![0u8; 64]))
            .await
            .expect("publish");
        let mut d = sub.next().await.expect("open").expect("delivery");
        d.ack().await.expect("ack");
        samples.push(start.elapsed());
    }
    t.close().await.expect("close");
    median(samples)
}

/// The raw baseline of [`ours_idle`].
async fn raw_idle() -> Duration {
    let topic = fresh("rawidle");
    let producer = raw_producer();
    producer
        .send(
            FutureRecord::to(&topic).key("k").payload("warm"),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("warm");
    let c = raw_consumer(&fresh("g"), &topic);
    let m = c.recv().await.expect("warm-up record");
    c.store_offset(m.topic(), m.partition(), m.offset())
        .expect("store");
    drop(m);
    let wire = Envelope::new("idle", "k", vec![0u8; 64]).to_wire().expect("wire");
    let mut samples = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        producer
            .send(
                FutureRecord::to(&topic).key("k").payload(wire.as_slice()),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("send");
        let m = c.recv().await.expect("record");
        c.store_offset(m.topic(), m.partition(), m.offset())
            .expect("store");
        samples.push(start.elapsed());
    }
    median(samples)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n = messages();
    let (linger, fetch) = (linger_ms(), fetch_wait_ms());
    let raw = raw_throughput(n).await;
    let ours_rate = ours_throughput(n).await;
    println!(
        "kafka/throughput: ours {ours_rate:.0} msg/s, raw rdkafka {raw:.0} msg/s ({:.2}× raw), linger {linger} ms, fetch wait {fetch} ms, {n} messages",
        ours_rate / raw
    );
    let raw_lat = raw_idle().await;
    let ours_lat = ours_idle().await;
    println!(
        "kafka/idle: ours {ours_lat:?}, raw rdkafka {raw_lat:?} ({:.2}× raw), publish → deliver → ack, median of 200, linger {linger} ms, fetch wait {fetch} ms",
        ours_lat.as_secs_f64() / raw_lat.as_secs_f64()
    );
    let report = json!({
        "messages": n,
        "linger_ms": linger,
        "fetch_wait_ms": fetch,
        "throughput": {"ours": ours_rate, "raw": raw},
        "idle_us": {"ours": ours_lat.as_micros() as u64, "raw": raw_lat.as_micros() as u64},
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/kafka-bench.json");
    if let Err(e) = std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap_or_default()) {
        eprintln!("cannot write {}: {e}", path.display());
    }
}
