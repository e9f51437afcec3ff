//! Shared barriers against a real broker (`KAFKA_URL`): fresh reads that
//! wait together append fewer barriers than there are reads, and each
//! still waits for a barrier sent after it began.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use multiagents_core::StateStore;
use multiagents_core::conformance::{backend_url, unique};

use super::super::KafkaStore;
use super::super::changelog::append;
use super::super::record::Change;
use crate::KafkaConfig;

fn config(url: &str) -> KafkaConfig {
    KafkaConfig::from_url(url)
        .expect("KAFKA_URL is a kafka:// URL")
        .with_prefix(unique("barrier").replace('.', "_"))
        .with_partitions(1)
}

/// The offset of a barrier appended now (on the only partition).
async fn end(store: &KafkaStore) -> i64 {
    let core = &store.inner.core;
    append(&core.producer, &core.changelog, 0, &[Change::Barrier])
        .await
        .expect("append a barrier")[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_reads_waiting_together_share_barriers() {
    let Some(url) = backend_url("KAFKA_URL") else {
        return;
    };
    let store = Arc::new(KafkaStore::with_config(config(&url)).await.expect("open"));
    store.put("k", Bytes::from_static(b"v"), None).await.expect("put");
    const READS: i64 = 64;
    let before = end(&store).await;
    let reads = (0..READS).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.get_fresh("k").await })
    });
    for read in futures_util::future::join_all(reads).await {
        let got = read.expect("the read ran").expect("a fresh read").expect("k");
        assert_eq!(got.value.as_ref(), b"v");
    }
    let barriers = end(&store).await - before - 1;
    assert!(
        (1..READS).contains(&barriers),
        "{READS} fresh reads at once appended {barriers} barriers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_barrier_is_always_sent_after_the_read_began() {
    let Some(url) = backend_url("KAFKA_URL") else {
        return;
    };
    let store = Arc::new(KafkaStore::with_config(config(&url)).await.expect("open"));
    // Barriers always on their way, so each call below arrives while one
    // is being appended and must wait for the next.
    let busy = Arc::new(AtomicBool::new(true));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (store, busy) = (store.clone(), busy.clone());
            tokio::spawn(async move {
                while busy.load(Ordering::Relaxed) {
                    let _ = store.get_fresh("other").await;
                }
            })
        })
        .collect();
    for i in 0..30 {
        // Anything appended before the call (here a record of our own)
        // lies below its barrier: a write acknowledged before a fresh
        // read is in the view that read returns.
        let before = end(&store).await;
        let inner = &store.inner;
        let barrier = inner.barriers.offset(&inner.core, 0).await.expect("a barrier");
        assert!(
            barrier > before,
            "call {i}: barrier at {barrier}, not after {before}"
        );
    }
    busy.store(false, Ordering::Relaxed);
    for task in load {
        task.await.expect("the load ran");
    }
}
