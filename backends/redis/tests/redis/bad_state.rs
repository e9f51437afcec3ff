//! Keys under the backend's prefix written by something else: each is a
//! typed error on the operation that meets it, and everything else keeps
//! working.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use multiagents_core::store::{Expected, PutEntry, Version};
use multiagents_core::{Envelope, ErrorKind, StateStore, SubscribeMode, SubscribeOptions, Transport};
use multiagents_redis::{RedisStore, RedisTransport};

use crate::support::{config, eventually, next, nothing_within, raw, run, state_key, stream_key, url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_stream_key_where_a_stream_belongs_is_a_typed_error() {
    let Some(url) = url() else { return };
    let config = config(&url, "wrongtype");
    let transport = RedisTransport::with_config(config.clone())
        .await
        .expect("connect");
    let mut con = raw(&url).await;
    let () = run(
        &mut con,
        redis::cmd("SET").arg(stream_key(&config, "broken")).arg("x"),
    )
    .await;

    let err = transport
        .subscribe("broken", SubscribeMode::queue("g"), SubscribeOptions::default())
        .await
        .expect_err("subscribe to a topic whose stream key holds a string");
    assert_eq!(err.kind(), ErrorKind::Unexpected, "{err}");
    assert_eq!(err.context_value("redis_error"), Some("WRONGTYPE"), "{err}");
    assert_eq!(err.context_value("topic"), Some("broken"), "{err}");

    let err = transport
        .publish(Envelope::new("broken", "k", &b"x"[..]))
        .await
        .expect_err("publish to a topic whose stream key holds a string");
    assert_eq!(err.kind(), ErrorKind::Unexpected, "{err}");
    assert_eq!(err.context_value("redis_error"), Some("WRONGTYPE"), "{err}");
    assert!(!err.is_retryable(), "{err}");
    let held: String = run(&mut con, redis::cmd("GET").arg(stream_key(&config, "broken"))).await;
    assert_eq!(held, "x", "the foreign key is left as it was");

    // A batch with a good topic before the bad one publishes nothing.
    let err = transport
        .publish_batch(vec![
            Envelope::new("good-first", "k", &b"1"[..]),
            Envelope::new("broken", "k", &b"2"[..]),
        ])
        .await
        .expect_err("a batch touching the broken topic");
    assert_eq!(err.context_value("redis_error"), Some("WRONGTYPE"), "{err}");
    let len: i64 = run(
        &mut con,
        redis::cmd("XLEN").arg(stream_key(&config, "good-first")),
    )
    .await;
    assert_eq!(
        len, 0,
        "the good topic's message of the failed batch was published"
    );

    // Another topic still works.
    let mut sub = transport
        .subscribe("fine", SubscribeMode::queue("g"), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let sent = Envelope::new("fine", "k", &b"ok"[..]);
    transport.publish(sent.clone()).await.expect("publish");
    let mut d = next(&mut sub, "another topic").await;
    assert_eq!(d.envelope(), &sent);
    d.ack().await.expect("ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_state_keys_are_typed_errors_and_scans_skip_them() {
    let Some(url) = url() else { return };
    let config = config(&url, "corrupt");
    let store = RedisStore::with_config(config.clone()).await.expect("connect");
    let mut con = raw(&url).await;
    let good = store
        .put("k/good", Bytes::from_static(b"fine"), None)
        .await
        .expect("put");
    let () = run(
        &mut con,
        redis::cmd("SET")
            .arg(state_key(&config, "k/string"))
            .arg("garbage")
            .arg("PX")
            .arg(3_600_000),
    )
    .await;
    // Shaped like headers, but their versions are not positive numbers.
    for (key, stored) in [
        ("k/negative", "-000000000000001-value"),
        ("k/zero", "0000000000000000-value"),
    ] {
        let () = run(
            &mut con,
            redis::cmd("SET").arg(state_key(&config, key)).arg(stored),
        )
        .await;
    }
    let _: i64 = run(
        &mut con,
        redis::cmd("RPUSH").arg(state_key(&config, "k/list")).arg("x"),
    )
    .await;
    let () = run(
        &mut con,
        redis::cmd("HSET")
            .arg(state_key(&config, "k/no-version"))
            .arg("v")
            .arg("x"),
    )
    .await;
    let () = run(
        &mut con,
        redis::cmd("HSET")
            .arg(state_key(&config, "k/bad-version"))
            .arg("v")
            .arg("x")
            .arg("n")
            .arg("abc"),
    )
    .await;
    for key in [
        "k/string",
        "k/list",
        "k/no-version",
        "k/bad-version",
        "k/negative",
    ] {
        let _: i64 = run(
            &mut con,
            redis::cmd("ZADD")
                .arg(format!("{}:index", config.key_prefix))
                .arg(0)
                .arg(key),
        )
        .await;
    }

    let err = store
        .get("k/list")
        .await
        .expect_err("a list where a string belongs");
    assert_eq!(err.kind(), ErrorKind::Unexpected, "{err}");
    assert_eq!(err.context_value("redis_error"), Some("WRONGTYPE"), "{err}");
    assert_eq!(err.context_value("key"), Some("k/list"), "{err}");

    // A string without our header, and hashes (what earlier releases
    // wrote) without a valid version, are corrupted: typed, naming the key.
    for key in [
        "k/string",
        "k/negative",
        "k/zero",
        "k/no-version",
        "k/bad-version",
    ] {
        let err = store.get(key).await.expect_err(key);
        assert_eq!(err.kind(), ErrorKind::Codec, "{key}: {err}");
        assert_eq!(err.context_value("key"), Some(key), "{err}");
        assert!(err.message().contains(key), "the message names the key: {err}");
    }

    // A compare-and-swap over a version that is not a number is refused,
    // whatever it expected: it neither passes nor leaves the key changed
    // (the string's swap is put back).
    for key in ["k/bad-version", "k/string", "k/negative", "k/zero"] {
        for expected in [Expected::Absent, Expected::Version(Version(1))] {
            let err = store
                .compare_and_swap(key, expected, Bytes::from_static(b"y"), None)
                .await
                .expect_err("a CAS over a bad version");
            assert_eq!(err.kind(), ErrorKind::Unexpected, "{key}: {err}");
            assert!(err.message().contains("not a number"), "{err}");
        }
    }
    let kept: String = run(&mut con, redis::cmd("GET").arg(state_key(&config, "k/string"))).await;
    assert_eq!(kept, "garbage", "the refused swap put the string back");
    let left: i64 = run(&mut con, redis::cmd("PTTL").arg(state_key(&config, "k/string"))).await;
    assert!(left > 3_500_000, "with its expiry: {left} ms left");
    let kept: String = run(&mut con, redis::cmd("GET").arg(state_key(&config, "k/negative"))).await;
    assert_eq!(kept, "-000000000000001-value");
    let err = store
        .compare_and_swap(
            "k/list",
            Expected::Version(Version(1)),
            Bytes::from_static(b"y"),
            None,
        )
        .await
        .expect_err("a CAS over a list");
    assert_eq!(err.kind(), ErrorKind::Unexpected, "{err}");
    assert_eq!(err.context_value("redis_error"), Some("WRONGTYPE"), "{err}");

    // Writing over the list fails, all or nothing: the good entry of the
    // same batch is not written either.
    let err = store
        .put_batch(vec![
            PutEntry::new("k/new", Bytes::from_static(b"n"), None),
            PutEntry::new("k/list", Bytes::from_static(b"s"), None),
        ])
        .await
        .expect_err("a batch writing over a list");
    assert_eq!(err.kind(), ErrorKind::Unexpected, "{err}");
    assert_eq!(
        store.get("k/new").await.expect("get"),
        None,
        "nothing of the failed batch was written"
    );

    // Other keys still read and write; a scan skips the broken ones.
    let got = store.get("k/good").await.expect("get").expect("present");
    assert_eq!((got.value.as_ref(), got.version), (&b"fine"[..], good));
    store
        .put("k/later", Bytes::from_static(b"later"), None)
        .await
        .expect("put");
    let mut keys = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .scan("k/", cursor.as_deref(), 2)
            .await
            .expect("scan does not fail");
        keys.extend(page.entries.into_iter().map(|(k, _)| k));
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        keys,
        BTreeSet::from(["k/good".to_string(), "k/later".to_string()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_entry_that_is_not_an_envelope_is_an_error_and_a_dead_letter() {
    let Some(url) = url() else { return };
    let config = config(&url, "not-envelope");
    let transport = RedisTransport::with_config(config.clone())
        .await
        .expect("connect");
    let (topic, group) = ("orders", "billing");
    let stream = stream_key(&config, topic);
    let mut sub = transport
        .subscribe(topic, SubscribeMode::queue(group), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let mut con = raw(&url).await;
    let garbage_id: String = run(
        &mut con,
        redis::cmd("XADD").arg(&stream).arg("*").arg("e").arg("garbage"),
    )
    .await;
    let no_field_id: String = run(
        &mut con,
        redis::cmd("XADD").arg(&stream).arg("*").arg("x").arg("y"),
    )
    .await;
    let sent = Envelope::new(topic, "tx-1", &b"after the garbage"[..]);
    transport.publish(sent.clone()).await.expect("publish");

    for id in [&garbage_id, &no_field_id] {
        let item = tokio::time::timeout(crate::support::WAIT, sub.next())
            .await
            .expect("an item in time")
            .expect("the subscription is open");
        let err = item.expect_err("an entry that is not an envelope");
        assert_eq!(err.kind(), ErrorKind::Codec, "{err}");
        assert_eq!(err.context_value("id"), Some(id.as_str()), "{err}");
        assert_eq!(err.context_value("topic"), Some(topic), "{err}");
    }
    let mut d = next(&mut sub, "the envelope after the garbage").await;
    assert_eq!(d.envelope(), &sent);
    assert_eq!(d.delivery_count(), 1);
    d.ack().await.expect("ack");
    nothing_within(
        &mut sub,
        Duration::from_millis(500),
        "the garbage is not redelivered",
    )
    .await;

    let transport = &transport;
    let dead = eventually("two dead letters", move || async move {
        let dead = transport.dead_letters(topic, 10).await.expect("dead letters");
        (dead.len() >= 2).then_some(dead)
    })
    .await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    for (dl, id) in dead.iter().zip([&garbage_id, &no_field_id]) {
        assert_eq!(&dl.original_id, id);
        assert_eq!(dl.group, group);
        assert_eq!(dl.envelope, None, "nothing to decode");
        assert!(
            dl.reason.starts_with("not an envelope"),
            "reason: {:?}",
            dl.reason
        );
    }
    assert_eq!(
        crate::support::pending(&mut con, &stream, group).await,
        0,
        "the garbage was acked"
    );
}
