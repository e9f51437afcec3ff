//! In-memory transport throughput: publish → deliver → ack, on 1 and 2
//! runtime threads, message by message and in batches of 256.
//!
//! Run: `cargo bench --bench transport`
//!
//! Each iteration is one message through the whole path: a producer task
//! publishes `n` messages while consumer tasks receive and ack them; the
//! measured time ends when the last ack returns. Criterion reports it as
//! elements/s = messages/s.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use multiagents::{Envelope, MemoryTransport, SubscribeMode, SubscribeOptions, Transport};

const BATCH: usize = 256;

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    let mut b = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    b.enable_all().build().expect("tokio runtime")
}

/// Sends `n` messages through a fresh topic; returns the elapsed time.
async fn run(n: u64, batched: bool, consumers: usize) -> Duration {
    let transport = MemoryTransport::new();
    let topic = format!("bench.{}", multiagents::EnvelopeId::new().as_uuid().simple());
    let payload = Bytes::from_static(&[7u8; 100]);
    let mut tasks = Vec::new();
    let per_consumer = n / consumers as u64;
    for c in 0..consumers {
        let mut sub = transport
            .subscribe(
                &topic,
                SubscribeMode::queue("g"),
                SubscribeOptions::max_in_flight(4 * BATCH),
            )
            .await
            .expect("subscribe");
        let quota = if c + 1 == consumers {
            n - per_consumer * c as u64
        } else {
            per_consumer
        };
        tasks.push(tokio::spawn(async move {
            let mut got = 0u64;
            while got < quota {
                let max = if batched { BATCH } else { 1 };
                let Some(Ok(batch)) = sub.next_batch(max.min((quota - got) as usize)).await else {
                    break;
                };
                for mut d in batch {
                    d.ack().await.expect("ack");
                    got += 1;
                }
            }
            got
        }));
    }
    let start = Instant::now();
    let producer = {
        let transport = transport.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            if batched {
                let mut sent = 0u64;
                while sent < n {
                    let k = BATCH.min((n - sent) as usize);
                    let batch: Vec<Envelope> = (0..k)
                        .map(|i| Envelope::new(topic.as_str(), format!("k{}", i % 64), payload.clone()))
                        .collect();
                    transport.publish_batch(batch).await.expect("publish_batch");
                    sent += k as u64;
                }
            } else {
                for i in 0..n {
                    let e = Envelope::new(topic.as_str(), format!("k{}", i % 64), payload.clone());
                    transport.publish(e).await.expect("publish");
                }
            }
        })
    };
    producer.await.expect("producer");
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("consumer");
    }
    assert_eq!(total, n, "every message delivered");
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("transport/memory/publish+deliver+ack");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    for threads in [1usize, 2] {
        let rt = runtime(threads);
        for batched in [false, true] {
            let id = format!(
                "{threads}thread{}/{}",
                if threads > 1 { "s" } else { "" },
                if batched { "batch256" } else { "single" }
            );
            group.bench_function(BenchmarkId::from_parameter(id), |b| {
                b.iter_custom(|iters| rt.block_on(run(iters.max(1), batched, threads)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
