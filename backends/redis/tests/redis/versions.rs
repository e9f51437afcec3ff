//! Version blocks (`keys.rs`, `cas.lua`, `put.lua`): a key's versions grow
//! one by one inside a block of 64 and jump to a fresh block past its end;
//! a new key and a `put` take a fresh block; no two keys share a version;
//! versions written by earlier releases (one counter value per write) stay
//! valid; a counter past the exact range of Lua numbers is a typed error.

use bytes::Bytes;
use multiagents_core::store::{Expected, Version};
use multiagents_core::{ErrorKind, StateStore};
use multiagents_redis::{RedisConfig, RedisStore};
use redis::AsyncCommands;

use crate::support::{config, raw, state_key, url};

const BLOCK: u64 = 64;

async fn store(url: &str, name: &str) -> (RedisStore, RedisConfig) {
    let config = config(url, name);
    let store = RedisStore::with_config(config.clone()).await.expect("connect");
    (store, config)
}

fn counter_key(config: &RedisConfig) -> String {
    format!("{}:version", config.key_prefix)
}

async fn counter(url: &str, config: &RedisConfig) -> Option<u64> {
    raw(url)
        .await
        .get(counter_key(config))
        .await
        .expect("GET the counter")
}

/// Compare-and-swaps `key` `n` times from `from`; returns every version.
async fn writes(store: &RedisStore, key: &str, from: Version, n: usize) -> Vec<Version> {
    let mut at = from;
    let mut out = Vec::new();
    for i in 0..n {
        let value = Bytes::from(format!("write-{i}"));
        at = store
            .compare_and_swap(key, Expected::Version(at), value, None)
            .await
            .expect("CAS on the version just written");
        out.push(at);
    }
    out
}

#[tokio::test]
async fn a_key_takes_one_counter_step_per_block_of_64_writes() {
    let Some(url) = url() else { return };
    let (store, config) = store(&url, "versions-block").await;
    let key = "saga/tx-1";
    let first = store
        .compare_and_swap(key, Expected::Absent, Bytes::from_static(b"new"), None)
        .await
        .expect("create");
    assert_eq!(first, Version(BLOCK), "the first block of a fresh prefix");
    assert_eq!(counter(&url, &config).await, Some(1));
    let rest = writes(&store, key, first, 150).await;
    let want: Vec<Version> = (BLOCK + 1..=BLOCK + 150).map(Version).collect();
    assert_eq!(rest, want, "one by one (alone, each fresh block is the next)");
    // 151 writes: blocks 1, 2 and 3; 2 and 3 taken when 127 and 191 ran out.
    assert_eq!(counter(&url, &config).await, Some(3));
}

#[tokio::test]
async fn keys_written_in_turn_never_share_a_version() {
    let Some(url) = url() else { return };
    let (store, _config) = store(&url, "versions-disjoint").await;
    let mut at = Vec::new();
    for key in ["a", "b", "c"] {
        let v = store
            .compare_and_swap(key, Expected::Absent, Bytes::from_static(b"0"), None)
            .await
            .expect("create");
        at.push((key, v));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (_, v) in &at {
        assert!(seen.insert(*v), "{v} twice");
    }
    for round in 0..100 {
        for (key, v) in at.iter_mut() {
            let next = store
                .compare_and_swap(key, Expected::Version(*v), Bytes::from(round.to_string()), None)
                .await
                .expect("CAS");
            assert!(next > *v, "{key}: {next} after {v}");
            assert!(seen.insert(next), "{key}: {next} is another key's version too");
            *v = next;
        }
        if round == 50 {
            // A put takes a fresh block: above everything written so far.
            let before = *seen.last().expect("versions");
            let v = store
                .put("b", Bytes::from_static(b"put"), None)
                .await
                .expect("put");
            assert!(v > before, "put gave {v}, not above {before}");
            assert!(seen.insert(v));
            at[1].1 = v;
        }
    }
}

#[tokio::test]
async fn versions_written_before_blocks_stay_valid() {
    let Some(url) = url() else { return };
    let (store, config) = store(&url, "versions-old").await;
    let mut conn = raw(&url).await;
    // What a release with one INCR per write left: version 5, counter 7.
    let _: () = conn
        .hset_multiple(state_key(&config, "old"), &[("v", "old"), ("n", "5")])
        .await
        .expect("HSET");
    let _: () = conn
        .zadd(format!("{}:index", config.key_prefix), "old", 0)
        .await
        .expect("ZADD");
    let _: () = conn.set(counter_key(&config), 7).await.expect("SET");
    let got = store.get("old").await.expect("get").expect("present");
    assert_eq!(got.version, Version(5));
    let v6 = writes(&store, "old", Version(5), 1).await[0];
    assert_eq!(v6, Version(6));
    assert!(store.delete("old").await.expect("delete"));
    let again = store
        .compare_and_swap("old", Expected::Absent, Bytes::from_static(b"new"), None)
        .await
        .expect("re-create");
    assert_eq!(again, Version(8 * BLOCK), "the block after the old counter");
    for stale in [5, 6] {
        let e = store
            .compare_and_swap(
                "old",
                Expected::Version(Version(stale)),
                Bytes::from_static(b"x"),
                None,
            )
            .await
            .expect_err("a version from before the delete");
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    }
}

#[tokio::test]
async fn a_counter_past_the_exact_range_is_refused_and_writes_nothing() {
    let Some(url) = url() else { return };
    let (store, config) = store(&url, "versions-end").await;
    // The next block would be 2^47 + 1: its versions pass 2^53.
    let _: () = raw(&url)
        .await
        .set(counter_key(&config), 1u64 << 47)
        .await
        .expect("SET");
    let cas = store
        .compare_and_swap("k", Expected::Absent, Bytes::from_static(b"v"), None)
        .await
        .expect_err("no exact version left");
    let put = store
        .put("k", Bytes::from_static(b"v"), None)
        .await
        .expect_err("no exact version left");
    for e in [cas, put] {
        assert_eq!(e.kind(), ErrorKind::Unexpected, "{e}");
        assert!(!e.is_retryable(), "{e}");
        assert!(e.to_string().contains("version space exhausted"), "{e}");
    }
    assert!(store.get("k").await.expect("get").is_none(), "nothing written");
    assert_eq!(
        counter(&url, &config).await,
        Some(1 << 47),
        "the counter is put back"
    );
}
