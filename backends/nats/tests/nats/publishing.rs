//! Concurrent batches never wait on each other: async-nats holds an
//! in-flight permit (5 000 by default) per unawaited acknowledgement, and
//! sixteen batches of 512 sent before any acknowledgement was awaited
//! used to take them all and wait forever.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use multiagents_core::{Envelope, SubscribeMode, SubscribeOptions, Transport};
use multiagents_nats::NatsTransport;

use crate::support::{WAIT, config, url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_batches_of_512_all_land() {
    let Some(url) = url() else { return };
    let t = Arc::new(
        NatsTransport::with_config(config(&url, "batches"))
            .await
            .expect("connect"),
    );
    let mut sub = t
        .subscribe(
            "bulk",
            SubscribeMode::queue("g"),
            SubscribeOptions::max_in_flight(1024),
        )
        .await
        .expect("subscribe");
    let mut tasks = Vec::new();
    for task in 0..16u32 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let batch = (0..512u32)
                .map(|i| {
                    Envelope::new(
                        "bulk",
                        format!("k{task}"),
                        (task * 512 + i).to_be_bytes().to_vec(),
                    )
                })
                .collect();
            t.publish_batch(batch).await
        }));
    }
    let published = tokio::time::timeout(Duration::from_secs(60), futures_util::future::join_all(tasks))
        .await
        .expect("16 × 512 published within 60 s (no deadlock)");
    for p in published {
        p.expect("task").expect("publish_batch");
    }
    let mut seen = HashSet::new();
    while seen.len() < 16 * 512 {
        let batch = tokio::time::timeout(WAIT, sub.next_batch(512))
            .await
            .expect("deliveries in time")
            .expect("open")
            .expect("deliveries");
        for mut d in batch {
            let n = u32::from_be_bytes(d.payload().try_into().expect("4 bytes"));
            assert!(seen.insert(n), "{n} delivered twice");
            d.ack().await.expect("ack");
        }
    }
}
