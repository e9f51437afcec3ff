//! The Kafka store across instances: writes forwarded to a partition's
//! owner, one compare-and-swap winner among instances, and a new instance
//! rebuilding values, versions and timers from the changelog.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use multiagents_core::conformance::unique;
use multiagents_core::scheduler::TimerChange;
use multiagents_core::{ErrorKind, Expected, StateStore};
use multiagents_kafka::KafkaStore;

use super::support::{config, url};

async fn open(url: &str, prefix: &str) -> KafkaStore {
    KafkaStore::with_config(config(url, "unused").with_prefix(prefix))
        .await
        .expect("open the Kafka store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_read_each_others_writes_and_one_cas_wins() {
    let Some(url) = url() else { return };
    let prefix = unique("store2").replace('.', "_");
    let a = Arc::new(open(&url, &prefix).await);
    let b = Arc::new(open(&url, &prefix).await);
    // Each writes half the keys (some are forwarded to the other, whichever
    // owns their partition) and reads its own write back at once.
    for i in 0..20 {
        let (writer, reader) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let key = format!("k/{i}");
        let v = writer
            .put(&key, Bytes::from(format!("v{i}")), None)
            .await
            .expect("put");
        let mine = writer.get(&key).await.expect("get").expect("read-your-writes");
        assert_eq!(
            (mine.version, mine.value.as_ref()),
            (v, format!("v{i}").as_bytes())
        );
        let theirs = reader
            .get_fresh(&key)
            .await
            .expect("get_fresh")
            .expect("the other's write");
        assert_eq!(theirs.version, v, "get_fresh on the other instance");
    }
    // Sixteen compare-and-swaps from both instances expect one version.
    let v = a.put("race", Bytes::from_static(b"0"), None).await.expect("put");
    let tries = (0..16).map(|i| {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move {
            s.compare_and_swap("race", Expected::Version(v), Bytes::from(format!("{i}")), None)
                .await
        })
    });
    let mut won = 0;
    for t in tries {
        match t.await.expect("join") {
            Ok(_) => won += 1,
            Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict, "{e}"),
        }
    }
    assert_eq!(won, 1, "exactly one compare-and-swap wins across instances");
    a.close().await.expect("close");
    b.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_instance_rebuilds_values_versions_and_timers() {
    let Some(url) = url() else { return };
    let prefix = unique("rebuild").replace('.', "_");
    let first = open(&url, &prefix).await;
    first
        .put("gone", Bytes::from_static(b"x"), None)
        .await
        .expect("put");
    let kept = first
        .put(
            "kept",
            Bytes::from_static(b"\x00\xff"),
            Some(Duration::from_secs(3600)),
        )
        .await
        .expect("put");
    let due = multiagents_core::orchestrator::now_ms() + 3_600_000;
    let timed = first
        .compare_and_swap_timed(
            "t/tx",
            Expected::Absent,
            Bytes::from_static(b"s"),
            None,
            TimerChange::At(due),
        )
        .await
        .expect("timed cas");
    assert!(first.delete("gone").await.expect("delete"));
    first.close().await.expect("close");
    drop(first);

    let second = open(&url, &prefix).await;
    assert_eq!(second.get("gone").await.expect("get"), None);
    let got = second.get("kept").await.expect("get").expect("kept");
    assert_eq!((got.version, got.value.as_ref()), (kept, &b"\x00\xff"[..]));
    assert_eq!(
        second.get("t/tx").await.expect("get").map(|v| v.version),
        Some(timed)
    );
    let sched = second.scheduler().expect("a scheduler");
    assert_eq!(sched.next_due("t").await.expect("next_due"), Some(due));
    assert_eq!(sched.pending("t").await.expect("pending"), 1);
    // The rebuilt instance writes on: a version greater than the rebuilt one.
    let next = second
        .compare_and_swap("kept", Expected::Version(kept), Bytes::from_static(b"y"), None)
        .await
        .expect("cas on the rebuilt version");
    assert!(next > kept);
    second.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_forwards_everything_and_claims_no_timers() {
    let Some(url) = url() else { return };
    let prefix = unique("client").replace('.', "_");
    let client = KafkaStore::client(config(&url, "unused").with_prefix(&prefix))
        .await
        .expect("open a client");
    // No serving instance: the write waits for an owner, then gives up
    // saying so; its request, past its deadline, is never applied later.
    let err = client
        .put("early", Bytes::from_static(b"x"), None)
        .await
        .expect_err("nobody owns the partition");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.message().contains("serving"), "{err}");

    let server = open(&url, &prefix).await;
    let v = client
        .put("k", Bytes::from_static(b"v"), None)
        .await
        .expect("a forwarded put");
    assert_eq!(client.get("k").await.expect("get").map(|g| g.version), Some(v));
    assert_eq!(server.get("k").await.expect("get").map(|g| g.version), Some(v));
    assert_eq!(
        server.get_fresh("early").await.expect("get_fresh"),
        None,
        "a request past its deadline is dropped"
    );

    // A due timer is claimed by its owner, never by the client.
    let now = multiagents_core::orchestrator::now_ms();
    client
        .compare_and_swap_timed("t/x", Expected::Absent, Bytes::new(), None, TimerChange::At(now))
        .await
        .expect("timed cas");
    let lease = Duration::from_secs(60);
    let c = client.scheduler().expect("a scheduler");
    assert!(
        c.claim_due("t", now + 1, 10, lease)
            .await
            .expect("claim")
            .is_empty()
    );
    let s = server.scheduler().expect("a scheduler");
    let got = s.claim_due("t", now + 1, 10, lease).await.expect("claim");
    assert_eq!(
        got.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
        vec!["t/x"]
    );
    client.close().await.expect("close");
    server.close().await.expect("close");
}
