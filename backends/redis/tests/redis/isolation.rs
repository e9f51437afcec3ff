//! Key-prefix isolation: two runtimes with different prefixes on one
//! server, using the same topic, group and key names, never see each
//! other's messages or state. One prefix starts with the other, the case
//! a careless `SCAN MATCH` pattern would get wrong.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use multiagents_core::conformance::unique;
use multiagents_core::{Envelope, StateStore, SubscribeMode, SubscribeOptions, Subscription, Transport};
use multiagents_redis::{RedisConfig, RedisStore, RedisTransport};

use crate::support::{next, nothing_within, raw, run, url};

const TOPIC: &str = "orders";
const GROUP: &str = "billing";

/// Two configurations: `p` and `p-b` (the second starts with the first).
fn two_prefixes(url: &str) -> (RedisConfig, RedisConfig) {
    let a = unique("iso");
    let b = format!("{a}-b");
    (
        RedisConfig::new(url).with_key_prefix(a),
        RedisConfig::new(url).with_key_prefix(b),
    )
}

async fn subscriptions(t: &RedisTransport) -> (Subscription, Subscription) {
    let queue = t
        .subscribe(TOPIC, SubscribeMode::queue(GROUP), SubscribeOptions::default())
        .await
        .expect("queue subscribe");
    let broadcast = t
        .subscribe(TOPIC, SubscribeMode::Broadcast, SubscribeOptions::default())
        .await
        .expect("broadcast subscribe");
    (queue, broadcast)
}

async fn all_keys(store: &RedisStore) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.scan("", cursor.as_deref(), 7).await.expect("scan");
        keys.extend(page.entries.into_iter().map(|(k, _)| k));
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => return keys,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_never_cross_key_prefixes() {
    let Some(url) = url() else { return };
    let (ca, cb) = two_prefixes(&url);
    let ta = RedisTransport::with_config(ca).await.expect("connect a");
    let tb = RedisTransport::with_config(cb).await.expect("connect b");
    let (mut qa, mut ba) = subscriptions(&ta).await;
    let (mut qb, mut bb) = subscriptions(&tb).await;

    let ea = Envelope::new(TOPIC, "tx-1", &b"for a"[..]);
    let eb = Envelope::new(TOPIC, "tx-1", &b"for b"[..]);
    ta.publish(ea.clone()).await.expect("publish a");
    tb.publish(eb.clone()).await.expect("publish b");

    for (sub, want, what) in [
        (&mut qa, &ea, "queue a"),
        (&mut qb, &eb, "queue b"),
        (&mut ba, &ea, "broadcast a"),
        (&mut bb, &eb, "broadcast b"),
    ] {
        let mut d = next(sub, what).await;
        assert_eq!(d.envelope(), want, "{what}");
        d.ack().await.expect("ack");
    }
    let quiet = Duration::from_millis(500);
    nothing_within(&mut qa, quiet, "queue a after its one message").await;
    nothing_within(&mut qb, quiet, "queue b after its one message").await;
    nothing_within(&mut ba, quiet, "broadcast a after its one message").await;
    nothing_within(&mut bb, quiet, "broadcast b after its one message").await;
    // A group created late on one prefix does not see the other's stream.
    let mut late = tb
        .subscribe(TOPIC, SubscribeMode::queue("late"), SubscribeOptions::default())
        .await
        .expect("late subscribe");
    let mut d = next(&mut late, "late group on b").await;
    assert_eq!(d.envelope(), &eb, "the retained message of b only");
    d.ack().await.expect("ack");
    nothing_within(&mut late, quiet, "late group on b").await;
    assert!(
        ta.dead_letters(TOPIC, 10)
            .await
            .expect("dead letters a")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_never_crosses_key_prefixes() {
    let Some(url) = url() else { return };
    let (ca, cb) = two_prefixes(&url);
    let (prefix_a, prefix_b) = (ca.key_prefix.clone(), cb.key_prefix.clone());
    let sa = RedisStore::with_config(ca).await.expect("connect a");
    let sb = RedisStore::with_config(cb).await.expect("connect b");

    sa.put("shared/key", Bytes::from_static(b"a"), None)
        .await
        .expect("put a");
    sb.put("shared/key", Bytes::from_static(b"b"), None)
        .await
        .expect("put b");
    for i in 0..20 {
        sa.put(&format!("shared/only-a-{i:02}"), Bytes::from_static(b"a"), None)
            .await
            .expect("put a");
    }
    let got_a = sa.get("shared/key").await.expect("get a").expect("present in a");
    let got_b = sb.get("shared/key").await.expect("get b").expect("present in b");
    assert_eq!(
        (got_a.value.as_ref(), got_b.value.as_ref()),
        (&b"a"[..], &b"b"[..])
    );
    assert_eq!(sb.get("shared/only-a-00").await.expect("get b"), None);

    let mut want_a: BTreeSet<String> = (0..20).map(|i| format!("shared/only-a-{i:02}")).collect();
    want_a.insert("shared/key".into());
    assert_eq!(all_keys(&sa).await, want_a, "a scans only its own keys");
    assert_eq!(
        all_keys(&sb).await,
        BTreeSet::from(["shared/key".to_string()]),
        "b scans only its own keys"
    );

    // A delete on one side leaves the other alone.
    assert!(sa.delete("shared/key").await.expect("delete a"));
    let still_b = sb
        .get("shared/key")
        .await
        .expect("get b")
        .expect("b keeps its key");
    assert_eq!(still_b, got_b);

    // Every key each side wrote lies under its own prefix, and each side
    // holds exactly its own state keys.
    let mut con = raw(&url).await;
    // SCAN, not KEYS: on a shared server holding millions of keys, KEYS
    // outlasts the connection's response timeout.
    let mut written: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = run(
            &mut con,
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix_a}*"))
                .arg("COUNT")
                .arg(10_000),
        )
        .await;
        written.extend(keys);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    written.sort();
    written.dedup();
    let (under_b, under_a): (Vec<_>, Vec<_>) = written
        .iter()
        .partition(|k| k.starts_with(&format!("{prefix_b}:")));
    assert!(
        under_a.iter().all(|k| k.starts_with(&format!("{prefix_a}:"))),
        "{under_a:?}"
    );
    let state = |keys: &[&String], prefix: &str| {
        keys.iter()
            .filter(|k| k.starts_with(&format!("{prefix}:k:")))
            .count()
    };
    assert_eq!(
        state(&under_a, &prefix_a),
        20,
        "a's state keys (one deleted): {under_a:?}"
    );
    assert_eq!(state(&under_b, &prefix_b), 1, "b's state key: {under_b:?}");
}
