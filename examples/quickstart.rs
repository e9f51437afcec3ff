//! Quickstart: the core contracts on the in-memory default backend.
//!
//! Run: `cargo run --example quickstart`
//!
//! It shows what every backend provides, on the embedded one:
//! 1. a queue group with two competing consumers splitting 1 000 orders,
//!    one of them crashing mid-way (its unacked orders go to the other);
//! 2. a `nack` with a delay (redelivered later, delivery count 2);
//! 3. broadcast events reaching every watcher;
//! 4. versioned state with compare-and-swap behind the moka cache.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use multiagents::codec::PayloadCodec;
use multiagents::{
    CacheConfig, CachedStore, Envelope, ErrorKind, Expected, MemoryStore, MemoryTransport, StateStore,
    SubscribeMode, SubscribeOptions, Transport,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u32,
    amount_cents: u64,
}

#[tokio::main]
async fn main() -> multiagents::Result<()> {
    let codec = PayloadCodec::default();
    let transport = MemoryTransport::new();

    // 1. Two consumers in group "billing"; the first "crashes" after 100 orders.
    let opts = SubscribeOptions::max_in_flight(32);
    let mut crashing = transport
        .subscribe("orders", SubscribeMode::queue("billing"), opts.clone())
        .await?;
    let mut steady = transport
        .subscribe("orders", SubscribeMode::queue("billing"), opts)
        .await?;
    let batch = (0..1000u32)
        .map(|id| {
            let order = Order {
                id,
                amount_cents: 1000 + u64::from(id),
            };
            codec
                .encode(&order)
                .map(|p| Envelope::new("orders", format!("tx-{id}"), p))
        })
        .collect::<multiagents::Result<Vec<_>>>()?;
    let started = Instant::now();
    transport.publish_batch(batch).await?;

    let crasher = tokio::spawn(async move {
        let mut held = Vec::new();
        while held.len() < 100 {
            match crashing.next().await {
                Some(Ok(d)) => held.push(d), // never acked
                _ => break,
            }
        }
        held.len() // dropping `held` and `crashing` = a crashed consumer
    });
    let unacked_by_crasher = crasher
        .await
        .map_err(|e| multiagents::Error::new(ErrorKind::Unexpected, "consumer task failed").with_source(e))?;

    let mut seen = HashSet::new();
    while seen.len() < 1000 {
        let Some(batch) = steady.next_batch(64).await else {
            break;
        };
        for mut d in batch? {
            let order: Order = codec.decode(d.payload())?;
            seen.insert(order.id);
            d.ack().await?;
        }
    }
    println!(
        "1. queue: {} distinct orders handled in {:?}; {} held unacked by a crashed consumer were redelivered",
        seen.len(),
        started.elapsed(),
        unacked_by_crasher
    );

    // 2. nack with a delay.
    transport
        .publish(Envelope::new(
            "orders",
            "tx-retry",
            codec.encode(&Order {
                id: 7,
                amount_cents: 1,
            })?,
        ))
        .await?;
    let mut first = steady.next().await.ok_or_else(closed)??;
    let nacked_at = Instant::now();
    first.nack(Duration::from_millis(200)).await?;
    let mut again = steady.next().await.ok_or_else(closed)??;
    println!(
        "2. nack(200ms): redelivered after {:?}, delivery count {}",
        nacked_at.elapsed(),
        again.delivery_count()
    );
    again.ack().await?;
    let err = again.ack().await.expect_err("second ack is refused");
    println!("   a second ack is a typed error: {err}");

    // 3. Broadcast events reach every watcher.
    let mut w1 = transport
        .subscribe("events", SubscribeMode::Broadcast, SubscribeOptions::default())
        .await?;
    let mut w2 = transport
        .subscribe("events", SubscribeMode::Broadcast, SubscribeOptions::default())
        .await?;
    transport
        .publish(Envelope::new("events", "tx-1", &b"workflow.completed"[..]))
        .await?;
    let (a, b) = (
        w1.next().await.ok_or_else(closed)??,
        w2.next().await.ok_or_else(closed)??,
    );
    println!(
        "3. broadcast: both watchers got {:?}",
        (
            String::from_utf8_lossy(a.payload()),
            String::from_utf8_lossy(b.payload())
        )
    );

    // 4. Versioned state with CAS behind the cache.
    let store = CachedStore::new(MemoryStore::new(), CacheConfig::default())?;
    let v1 = store
        .compare_and_swap("saga:tx-1", Expected::Absent, "running".into(), None)
        .await?;
    let v2 = store
        .compare_and_swap("saga:tx-1", Expected::Version(v1), "completed".into(), None)
        .await?;
    let stale = store
        .compare_and_swap("saga:tx-1", Expected::Version(v1), "failed".into(), None)
        .await;
    let current = store.get("saga:tx-1").await?.ok_or_else(closed)?;
    println!(
        "4. state: {v1} -> {v2}; a stale CAS is refused ({}); value {:?}; cache {:?}",
        stale.map_err(|e| e.kind()).err().map_or("?", |k| k.as_str()),
        String::from_utf8_lossy(&current.value),
        store.stats()
    );
    Ok(())
}

fn closed() -> multiagents::Error {
    multiagents::Error::new(ErrorKind::Closed, "stream ended")
}
