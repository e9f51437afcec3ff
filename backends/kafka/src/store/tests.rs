//! Fencing against a real broker (`KAFKA_URL`): a writer whose partition
//! was claimed by another (a zombie) is refused by every view, its caller
//! is told, and an instance rebuilt from the changelog agrees.

use bytes::Bytes;
use multiagents_core::conformance::{backend_url, unique};
use multiagents_core::{ErrorKind, StateStore};

use super::KafkaStore;
use super::changelog::append;
use super::record::{Change, partition_of, version};
use crate::KafkaConfig;

fn config(url: &str) -> KafkaConfig {
    KafkaConfig::from_url(url)
        .expect("KAFKA_URL is a kafka:// URL")
        .with_prefix(unique("fence").replace('.', "_"))
        .with_partitions(2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_writer_is_refused_everywhere_and_its_caller_told() {
    let Some(url) = backend_url("KAFKA_URL") else {
        return;
    };
    let config = config(&url);
    let store = KafkaStore::with_config(config.clone()).await.expect("open");
    let v1 = store
        .put("k", Bytes::from_static(b"one"), None)
        .await
        .expect("put");
    let core = store.inner.core.clone();
    let p = partition_of("k", core.partitions);
    let (epoch, _) = core.view.read().map(|v| (v.owner(p).0, ())).expect("view");

    // Another member claims the partition; this store's writer is not told
    // (the group did not move it): it is now a zombie.
    let claim = Change::Claim {
        epoch: epoch + 1,
        member: "intruder".into(),
    };
    let at = append(&core.producer, &core.changelog, p, &[claim])
        .await
        .expect("append a claim");
    core.progress
        .past(p, at[0], core.timeout)
        .await
        .expect("read the claim");

    // The zombie's write is appended, read back refused, and reported.
    let err = store
        .put("k", Bytes::from_static(b"two"), None)
        .await
        .expect_err("a fenced write");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    assert!(err.message().contains("moved to another owner"), "{err}");
    // A stale record appended by any other path changes nothing either.
    let stale = Change::Put {
        key: "k".into(),
        value: Bytes::from_static(b"three"),
        version: version(epoch, 1 << 20).expect("a version"),
        written: version(epoch, 1 << 20).expect("a version"),
        expires_ms: None,
        request: None,
        timer: None,
    };
    let at = append(&core.producer, &core.changelog, p, &[stale])
        .await
        .expect("append");
    core.progress.past(p, at[0], core.timeout).await.expect("read it");
    let got = store.get("k").await.expect("get").expect("k");
    assert_eq!((got.version, got.value.as_ref()), (v1, &b"one"[..]));

    // A view rebuilt from the beginning folds the same way.
    store.close().await.expect("close");
    drop(store);
    let rebuilt = KafkaStore::with_config(config).await.expect("reopen");
    let got = rebuilt.get("k").await.expect("get").expect("k");
    assert_eq!((got.version, got.value.as_ref()), (v1, &b"one"[..]));
    rebuilt.close().await.expect("close");
}

/// The last record of `key` in partition `p`, read from the beginning up
/// to a barrier appended now.
async fn last_record(store: &KafkaStore, p: i32, key: &str) -> Option<Change> {
    use rdkafka::consumer::Consumer;
    use rdkafka::message::Message;
    let core = &store.inner.core;
    let end = append(&core.producer, &core.changelog, p, &[Change::Barrier])
        .await
        .expect("append a barrier")[0];
    let consumer = crate::client::plain_consumer(&core.config).expect("a reader");
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset(&core.changelog, p, rdkafka::Offset::Beginning)
        .expect("a partition");
    consumer.assign(&list).expect("assign");
    let mut last = None;
    loop {
        let m = tokio::time::timeout(std::time::Duration::from_secs(30), consumer.recv())
            .await
            .expect("the changelog is read within 30 s")
            .expect("a record");
        if m.key() == Some(key.as_bytes()) {
            let headers = crate::headers::read(&m);
            last = Change::decode(key.as_bytes(), m.payload(), &headers).ok();
        }
        if m.offset() >= end {
            return last;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_writes_over_a_fenced_record_so_compaction_keeps_an_accepted_one() {
    let Some(url) = backend_url("KAFKA_URL") else {
        return;
    };
    let store = KafkaStore::with_config(config(&url)).await.expect("open");
    let v1 = store
        .put("k", Bytes::from_static(b"one"), None)
        .await
        .expect("put");
    let core = store.inner.core.clone();
    let p = partition_of("k", core.partitions);
    let epoch = core.view.read().map(|v| v.owner(p).0).expect("view");
    // A record of an epoch before the owner's (a zombie's, late).
    let stale = version(epoch - 1, 1 << 30).expect("a version");
    let zombie = Change::Put {
        key: "k".into(),
        value: Bytes::from_static(b"zombie"),
        version: stale,
        written: stale,
        expires_ms: None,
        request: None,
        timer: None,
    };
    append(&core.producer, &core.changelog, p, &[zombie])
        .await
        .expect("append");
    // The owner's writer looks every second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match last_record(&store, p, "k").await {
            Some(Change::Put {
                value,
                version,
                written,
                ..
            }) if super::record::epoch_of(written) == epoch => {
                assert_eq!(
                    (value.as_ref(), version),
                    (&b"one"[..], v1.0),
                    "the accepted state, its version kept"
                );
                break;
            }
            other => assert!(
                std::time::Instant::now() < deadline,
                "not written over within 30 s: {other:?}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let got = store.get("k").await.expect("get").expect("k");
    assert_eq!((got.version, got.value.as_ref()), (v1, &b"one"[..]));
    store.close().await.expect("close");
}

/// Sends `write` to its partition's writer here as forwarded request `id`.
async fn forwarded(
    store: &KafkaStore,
    id: &str,
    write: super::decide::Write,
) -> multiagents_core::Result<super::decide::Done> {
    use super::writer::{Forwarded, Job, Work};
    let p = partition_of(write.key(), store.inner.core.partitions);
    let jobs = store
        .inner
        .owned
        .jobs(p)
        .expect("this instance writes the partition");
    let (reply, answer) = tokio::sync::oneshot::channel();
    let request = Some(Forwarded {
        id: id.to_string(),
        deadline_ms: super::now_ms() + 60_000,
    });
    let job = Job {
        work: Work::Write(write),
        request,
        reply,
    };
    assert!(jobs.send(job).await.is_ok(), "the writer takes it");
    answer.await.expect("an answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_request_read_again_is_answered_as_it_was() {
    use super::decide::Write;
    use multiagents_core::Expected;
    let Some(url) = backend_url("KAFKA_URL") else {
        return;
    };
    let store = KafkaStore::with_config(config(&url)).await.expect("open");
    let delete = || Write::Delete { key: "k".into() };
    // A delete of nothing, then a put: the delete read again deletes nothing.
    assert!(!forwarded(&store, "m/1", delete()).await.expect("delete").existed);
    let v = store.put("k", Bytes::from_static(b"v"), None).await.expect("put");
    assert!(!forwarded(&store, "m/1", delete()).await.expect("replay").existed);
    assert_eq!(store.get("k").await.expect("get").map(|g| g.version), Some(v));
    // A conflict, then the key goes: the compare-and-swap read again still conflicts.
    let create = || Write::Cas {
        key: "k".into(),
        expected: Expected::Absent,
        value: Bytes::from_static(b"w"),
        ttl: None,
        timer: multiagents_core::scheduler::TimerChange::Keep,
    };
    let err = forwarded(&store, "m/2", create()).await.expect_err("a conflict");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(store.delete("k").await.expect("delete"));
    let err = forwarded(&store, "m/2", create())
        .await
        .expect_err("the same conflict");
    assert_eq!(
        (err.kind(), err.context_value("actual")),
        (ErrorKind::Conflict, Some(v.to_string().as_str()))
    );
    assert_eq!(
        store.get("k").await.expect("get"),
        None,
        "not applied on the replay"
    );
    // A put read again returns its version and writes nothing new.
    let put = || Write::Put {
        key: "p".into(),
        value: Bytes::from_static(b"x"),
        ttl: None,
    };
    let first = forwarded(&store, "m/3", put()).await.expect("put");
    let again = forwarded(&store, "m/3", put()).await.expect("replay");
    assert_eq!(again.version, first.version);
    assert_eq!(
        again.offset, first.offset,
        "the record's offset, for the asker's read-back"
    );
    store.close().await.expect("close");
}
