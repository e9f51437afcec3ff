//! Bad input: typed errors naming the value, and nothing published.

use super::queue_sub;
use crate::conformance::util::{
    OVERSIZE_CHECK_LIMIT, assert_names, expect_quiet, must, must_fail, recv, require,
};
use crate::conformance::{Settings, skip, unique};
use crate::envelope::Envelope;
use crate::error::ErrorKind;
use crate::transport::{SubscribeMode, SubscribeOptions, Transport};

/// Topic names every backend must refuse, with what the error must name.
const BAD_TOPICS: [(&str, &str); 6] = [
    ("bad topic", "bad topic"),
    ("", "topic"),
    ("a..b", "a..b"),
    (".lead", ".lead"),
    ("star*", "star*"),
    ("ünï", "ünï"),
];

/// Whether an oversized payload of `max + 1` bytes may be allocated for a
/// check; otherwise prints a visible skip for that check.
fn oversize_checkable(test: &str, backend: &str, max: usize) -> bool {
    let ok = max < OVERSIZE_CHECK_LIMIT;
    if !ok {
        skip(
            test,
            backend,
            "a max_payload small enough to exceed in a test (< 64 MiB)",
        );
    }
    ok
}

/// A batch with one bad envelope (empty key, bad topic, oversized payload)
/// fails whole and publishes nothing: a subscriber sees only a valid
/// message published afterwards. An empty batch is a no-op.
pub async fn batch_with_invalid_envelope_publishes_nothing<T: Transport + ?Sized>(t: &T, s: &Settings) {
    let caps = t.capabilities();
    require!(caps, "batch_with_invalid_envelope_publishes_nothing", queue);
    let topic = unique("badbatch");
    let mut sub = queue_sub(t, s, &topic, &unique("g"), 16).await;
    must(s, "empty publish_batch", t.publish_batch(Vec::new())).await;

    let ok = |p: &'static [u8]| Envelope::new(&topic, "k", p);
    let batch = vec![ok(b"1"), Envelope::new(&topic, "", &b"2"[..]), ok(b"3")];
    let e = must_fail(
        s,
        "publish_batch with an empty key",
        ErrorKind::InvalidInput,
        t.publish_batch(batch),
    )
    .await;
    assert_names(&e, "key", "publish_batch with an empty key");
    let batch = vec![ok(b"1"), Envelope::new("bad topic", "k", &b"2"[..])];
    let e = must_fail(
        s,
        "publish_batch with a bad topic",
        ErrorKind::InvalidInput,
        t.publish_batch(batch),
    )
    .await;
    assert_names(&e, "bad topic", "publish_batch with a bad topic");
    if oversize_checkable(
        "batch_with_invalid_envelope_publishes_nothing",
        caps.name,
        caps.max_payload,
    ) {
        let big = Envelope::new(&topic, "k", vec![7u8; caps.max_payload + 1]);
        let batch = vec![ok(b"1"), big];
        let e = must_fail(
            s,
            "publish_batch with an oversized payload",
            ErrorKind::TooLarge,
            t.publish_batch(batch),
        );
        assert_names(
            &e.await,
            &(caps.max_payload + 1).to_string(),
            "publish_batch with an oversized payload",
        );
    }
    expect_quiet(&mut sub, s.quiet, "after publish_batch calls that all failed").await;

    let marker = ok(b"after");
    must(s, "publish", t.publish(marker.clone())).await;
    let mut d = recv(
        &mut sub,
        s.patience,
        "the valid message published after the failed batches",
    )
    .await;
    assert_eq!(
        d.envelope().id,
        marker.id,
        "a message of a failed batch was published: {:?}",
        d.envelope()
    );
    must(s, "ack", d.ack()).await;
    expect_quiet(&mut sub, s.quiet, "after the valid message").await;
}

/// `publish` refuses bad topics and keys (`InvalidInput`) and oversized
/// payloads (`TooLarge`), each error naming the value (or its size).
pub async fn publish_rejects_bad_input<T: Transport + ?Sized>(t: &T, s: &Settings) {
    let caps = t.capabilities();
    for (topic, named) in BAD_TOPICS {
        let what = format!("publish to topic {topic:?}");
        let e = must_fail(
            s,
            &what,
            ErrorKind::InvalidInput,
            t.publish(Envelope::new(topic, "k", &b"x"[..])),
        );
        assert_names(&e.await, named, &what);
    }
    let topic = unique("badpub");
    for (key, named) in [("", "key"), ("a\nb", "key")] {
        let what = format!("publish with key {key:?}");
        let e = must_fail(
            s,
            &what,
            ErrorKind::InvalidInput,
            t.publish(Envelope::new(&topic, key, &b"x"[..])),
        );
        assert_names(&e.await, named, &what);
    }
    let long_key = "k".repeat(crate::validate::MAX_KEY_LEN + 1);
    let e = t.publish(Envelope::new(&topic, long_key, &b"x"[..]));
    must_fail(s, "publish with a 1025-byte key", ErrorKind::InvalidInput, e).await;
    if oversize_checkable("publish_rejects_bad_input", caps.name, caps.max_payload) {
        let len = caps.max_payload + 1;
        let e = t.publish(Envelope::new(&topic, "k", vec![0u8; len]));
        let e = must_fail(s, "publish of an oversized payload", ErrorKind::TooLarge, e).await;
        assert_names(&e, &len.to_string(), "publish of an oversized payload");
    }
}

/// `subscribe` refuses bad topics and groups and `max_in_flight` 0
/// (`InvalidInput`, naming the value), and a mode the backend lacks
/// (`Unsupported`).
pub async fn subscribe_rejects_bad_input<T: Transport + ?Sized>(t: &T, s: &Settings) {
    let caps = t.capabilities();
    let mode = if caps.queue {
        SubscribeMode::queue(unique("g"))
    } else {
        SubscribeMode::Broadcast
    };
    for (topic, named) in BAD_TOPICS {
        let what = format!("subscribe to topic {topic:?}");
        let sub = t.subscribe(topic, mode.clone(), SubscribeOptions::default());
        assert_names(
            &must_fail(s, &what, ErrorKind::InvalidInput, sub).await,
            named,
            &what,
        );
    }
    let topic = unique("badsub");
    if caps.queue {
        for (group, named) in [
            ("bad group", "bad group"),
            ("", "group"),
            ("a..b", "a..b"),
            ("g>", "g>"),
        ] {
            let what = format!("subscribe in group {group:?}");
            let sub = t.subscribe(&topic, SubscribeMode::queue(group), SubscribeOptions::default());
            assert_names(
                &must_fail(s, &what, ErrorKind::InvalidInput, sub).await,
                named,
                &what,
            );
        }
        let what = "subscribe with max_in_flight 0";
        let sub = t.subscribe(
            &topic,
            SubscribeMode::queue(unique("g")),
            SubscribeOptions::max_in_flight(0),
        );
        assert_names(
            &must_fail(s, what, ErrorKind::InvalidInput, sub).await,
            "max_in_flight",
            what,
        );
    } else {
        let sub = t.subscribe(
            &topic,
            SubscribeMode::queue(unique("g")),
            SubscribeOptions::default(),
        );
        must_fail(
            s,
            "queue subscribe on a backend without queue mode",
            ErrorKind::Unsupported,
            sub,
        )
        .await;
    }
    if !caps.broadcast {
        let sub = t.subscribe(&topic, SubscribeMode::Broadcast, SubscribeOptions::default());
        must_fail(
            s,
            "broadcast subscribe on a backend without broadcast",
            ErrorKind::Unsupported,
            sub,
        )
        .await;
    }
}
