//! Compare-and-swap (`cas.lua`) under concurrent writers on two separate
//! clients (two `RedisStore`s, so two connection pools).

use std::sync::Arc;

use bytes::Bytes;
use multiagents_core::store::{Expected, Version};
use multiagents_core::{ErrorKind, StateStore};
use multiagents_redis::RedisStore;
use tokio::sync::Barrier;

use crate::support::{WAIT, config, url};

async fn two_stores(url: &str, name: &str) -> [RedisStore; 2] {
    let config = config(url, name);
    [
        RedisStore::with_config(config.clone()).await.expect("connect a"),
        RedisStore::with_config(config).await.expect("connect b"),
    ]
}

/// Runs 32 CAS calls expecting `expected` on `key` at once, half through
/// each store; returns (writer, result) pairs.
async fn race(
    stores: &[RedisStore; 2],
    key: &str,
    expected: Expected,
) -> Vec<(usize, multiagents_core::Result<Version>)> {
    let barrier = Arc::new(Barrier::new(32));
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = stores[i % 2].clone();
            let barrier = barrier.clone();
            let key = key.to_string();
            tokio::spawn(async move {
                barrier.wait().await;
                let value = Bytes::from(format!("writer-{i}"));
                (i, store.compare_and_swap(&key, expected, value, None).await)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(
            tokio::time::timeout(WAIT, t)
                .await
                .expect("CAS in time")
                .expect("task"),
        );
    }
    out
}

/// Exactly one winner; every other writer gets `Conflict` naming what it
/// expected and the winner's version. Returns the winner and its version.
fn one_winner(results: Vec<(usize, multiagents_core::Result<Version>)>, expected: &str) -> (usize, Version) {
    let (won, lost): (Vec<_>, Vec<_>) = results.into_iter().partition(|(_, r)| r.is_ok());
    assert_eq!(won.len(), 1, "exactly one CAS wins: {won:?}");
    assert_eq!(lost.len(), 31);
    let (winner, version) = match &won[0] {
        (i, Ok(v)) => (*i, *v),
        (_, Err(e)) => unreachable!("partitioned on is_ok: {e}"),
    };
    for (i, r) in lost {
        let e = r.expect_err("a loser");
        assert_eq!(e.kind(), ErrorKind::Conflict, "writer {i}: {e}");
        assert_eq!(e.context_value("expected"), Some(expected), "writer {i}: {e}");
        let actual = version.to_string();
        assert_eq!(
            e.context_value("actual"),
            Some(actual.as_str()),
            "writer {i}: {e}"
        );
    }
    (winner, version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_32_concurrent_cas_expecting_one_version_exactly_one_wins() {
    let Some(url) = url() else { return };
    let stores = two_stores(&url, "cas-race").await;
    let key = "saga/tx-1";
    let v0 = stores[0]
        .put(key, Bytes::from_static(b"start"), None)
        .await
        .expect("put");

    let (winner, v1) = one_winner(race(&stores, key, Expected::Version(v0)).await, &v0.to_string());
    assert!(v1 > v0, "{v1} after {v0}");
    for store in &stores {
        let got = store.get(key).await.expect("get").expect("present");
        assert_eq!(got.version, v1);
        assert_eq!(
            got.value,
            Bytes::from(format!("writer-{winner}")),
            "the winner's value"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_32_concurrent_creates_exactly_one_wins() {
    let Some(url) = url() else { return };
    let stores = two_stores(&url, "cas-create").await;
    let key = "lock/tx-1";
    let (winner, v1) = one_winner(race(&stores, key, Expected::Absent).await, "absent");
    let got = stores[1].get(key).await.expect("get").expect("present");
    assert_eq!(
        (got.version, got.value),
        (v1, Bytes::from(format!("writer-{winner}")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_incremented_by_cas_retry_loops_loses_no_update() {
    let Some(url) = url() else { return };
    let stores = two_stores(&url, "cas-counter").await;
    let key = "counter";
    const TASKS: usize = 8;
    const INCREMENTS: usize = 50;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = stores[t % 2].clone();
            tokio::spawn(async move {
                for _ in 0..INCREMENTS {
                    loop {
                        let current = store.get(key).await.expect("get");
                        let (n, expected) = match &current {
                            None => (0u64, Expected::Absent),
                            Some(v) => {
                                let n = std::str::from_utf8(&v.value)
                                    .expect("utf-8")
                                    .parse::<u64>()
                                    .expect("a number");
                                (n, Expected::Version(v.version))
                            }
                        };
                        let next = Bytes::from((n + 1).to_string());
                        match store.compare_and_swap(key, expected, next, None).await {
                            Ok(_) => break,
                            Err(e) if e.kind() == ErrorKind::Conflict => {}
                            Err(e) => panic!("task {t}: {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        tokio::time::timeout(WAIT * 3, t)
            .await
            .expect("increments in time")
            .expect("task");
    }
    let got = stores[0].get(key).await.expect("get").expect("present");
    assert_eq!(
        got.value,
        Bytes::from((TASKS * INCREMENTS).to_string()),
        "no increment lost"
    );
}
