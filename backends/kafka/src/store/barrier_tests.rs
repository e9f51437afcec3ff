//! Shared barriers: the rules with appends the tests hold and release
//! (no broker), and fresh reads against a real broker (`KAFKA_URL`) that
//! append fewer barriers than there are reads.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use multiagents_core::conformance::{backend_url, unique};
use multiagents_core::{Error, ErrorKind, StateStore};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{Append, Barriers};
use crate::KafkaConfig;
use crate::store::KafkaStore;
use crate::store::changelog::append;
use crate::store::record::Change;

/// Appends that wait until the test releases them: the `n`th append (from
/// 1) is answered with offset `n` when its gate is opened.
#[derive(Clone, Default)]
struct Held {
    calls: Arc<AtomicI64>,
    gates: Arc<Mutex<Vec<oneshot::Sender<()>>>>,
}

impl Held {
    fn append(&self) -> Append {
        let held = self.clone();
        Arc::new(move |_p| {
            let n = held.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let (tx, rx) = oneshot::channel();
            held.gates.lock().expect("gates").push(tx);
            Box::pin(async move {
                let _ = rx.await;
                Ok(n)
            })
        })
    }

    async fn started(&self, n: i64) {
        let waited = tokio::time::timeout(Duration::from_secs(5), async {
            while self.calls.load(Ordering::SeqCst) < n {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        assert!(waited.await.is_ok(), "append {n} was never started");
    }

    fn release(&self) {
        for gate in self.gates.lock().expect("gates").drain(..) {
            let _ = gate.send(());
        }
    }
}

#[tokio::test]
async fn a_read_never_joins_a_barrier_already_sent() {
    let held = Held::default();
    let barriers = Arc::new(Barriers::new(1, held.append(), CancellationToken::new()));
    let read = |b: &Arc<Barriers>| {
        let b = b.clone();
        tokio::spawn(async move { b.offset(0).await })
    };
    let first = read(&barriers);
    held.started(1).await;
    // The first barrier is being appended: these two wait for the next.
    let (second, third) = (read(&barriers), read(&barriers));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(held.calls.load(Ordering::SeqCst), 1, "one append at a time");
    held.release();
    held.started(2).await;
    held.release();
    let got = |t: tokio::task::JoinHandle<multiagents_core::Result<i64>>| async move {
        t.await.expect("the read ran").expect("a barrier")
    };
    assert_eq!(got(first).await, 1);
    assert_eq!(got(second).await, 2, "a read that came during the first append");
    assert_eq!(got(third).await, 2, "reads waiting together share one");
    assert_eq!(held.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn every_read_of_a_failed_barrier_gets_its_error_and_the_next_one_is_sent_anew() {
    let calls = Arc::new(AtomicI64::new(0));
    let counted = calls.clone();
    let append: Append = Arc::new(move |_p| {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if n == 0 {
                Err(Error::new(ErrorKind::Unavailable, "the broker is down")
                    .with_operation("kafka.store.append"))
            } else {
                Ok(42)
            }
        })
    });
    let barriers = Arc::new(Barriers::new(1, append, CancellationToken::new()));
    let reads: Vec<_> = (0..5)
        .map(|_| {
            let b = barriers.clone();
            tokio::spawn(async move { b.offset(0).await })
        })
        .collect();
    for read in reads {
        let err = read.await.expect("the read ran").expect_err("the barrier failed");
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(err.is_retryable(), "{err}");
    }
    assert_eq!(barriers.offset(0).await.expect("a barrier"), 42);
}

#[tokio::test]
async fn a_read_waiting_when_the_store_closes_is_told_so() {
    let never: Append = Arc::new(|_p| Box::pin(std::future::pending()));
    let closed = CancellationToken::new();
    let barriers = Arc::new(Barriers::new(1, never, closed.clone()));
    let b = barriers.clone();
    let read = tokio::spawn(async move { b.offset(0).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    closed.cancel();
    let err = read.await.expect("the read ran").expect_err("closed");
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    let err = barriers.offset(7).await.expect_err("no partition 7");
    assert_eq!(err.kind(), ErrorKind::Unexpected, "{err}");
}

#[test]
fn a_barrier_whose_runtime_shut_down_is_replaced_not_joined() {
    let barriers = Arc::new(Barriers::new(
        1,
        Arc::new(|_p| Box::pin(async { Ok(7) })),
        CancellationToken::new(),
    ));
    let other = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    // A barrier waits behind an append in flight (the lock held here) on a
    // runtime that then shuts down: its task is dropped unsent.
    let turn = barriers.slots[0].sending.try_lock().expect("free");
    let b = barriers.clone();
    let waited =
        other.block_on(async move { tokio::time::timeout(Duration::from_millis(20), b.offset(0)).await });
    assert!(waited.is_err(), "the barrier waited");
    drop(other);
    drop(turn);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let got = runtime.block_on(async { barriers.offset(0).await });
    assert_eq!(got.expect("a new barrier"), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_reads_waiting_together_share_barriers() {
    let Some(url) = backend_url("KAFKA_URL") else {
        return;
    };
    let config = KafkaConfig::from_url(&url)
        .expect("KAFKA_URL is a kafka:// URL")
        .with_prefix(unique("barrier").replace('.', "_"))
        .with_partitions(1);
    let store = Arc::new(KafkaStore::with_config(config).await.expect("open"));
    store.put("k", Bytes::from_static(b"v"), None).await.expect("put");
    let end = || async {
        let core = &store.inner.core;
        append(&core.producer, &core.changelog, 0, &[Change::Barrier])
            .await
            .expect("append a barrier")[0]
    };
    const READS: i64 = 64;
    let before = end().await;
    let reads = (0..READS).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.get_fresh("k").await })
    });
    for read in futures_util::future::join_all(reads).await {
        let got = read.expect("the read ran").expect("a fresh read").expect("k");
        assert_eq!(got.value.as_ref(), b"v");
    }
    let barriers = end().await - before - 1;
    assert!(
        (1..READS / 4).contains(&barriers),
        "{READS} fresh reads at once appended {barriers} barriers"
    );
}
