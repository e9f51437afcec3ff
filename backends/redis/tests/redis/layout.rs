//! The state key layout (`stored.rs`, `cas.lua`): a string of a version
//! header and the value, swapped by one `SET … GET`. A swap that finds
//! another version puts back exactly what it replaced, expiry included; a
//! write sets or clears the expiry as it asks; hashes written by earlier
//! releases are read, scanned and replaced by strings on their next write.

use std::time::Duration;

use bytes::Bytes;
use multiagents_core::store::{Expected, Version};
use multiagents_core::{ErrorKind, StateStore};
use multiagents_redis::{RedisConfig, RedisStore};
use redis::aio::MultiplexedConnection;

use crate::support::{config, raw, run, state_key, url};

const HOUR: Duration = Duration::from_secs(3600);

async fn store(url: &str, name: &str) -> (RedisStore, RedisConfig, MultiplexedConnection) {
    let config = config(url, name);
    let store = RedisStore::with_config(config.clone()).await.expect("connect");
    (store, config, raw(url).await)
}

async fn pttl(con: &mut MultiplexedConnection, config: &RedisConfig, key: &str) -> i64 {
    run(con, redis::cmd("PTTL").arg(state_key(config, key))).await
}

/// Values of both sizes `cas.lua` treats apart: one `SET … GET` up to 1 KiB,
/// a header read and a `SET` above.
const SIZES: [usize; 2] = [8, 4096];

/// `size` bytes of `fill`.
fn sized(fill: u8, size: usize) -> Bytes {
    Bytes::from(vec![fill; size])
}

#[tokio::test]
async fn a_swap_that_conflicts_puts_back_the_value_and_its_expiry() {
    let Some(url) = url() else { return };
    let (store, config, mut con) = store(&url, "layout-conflict").await;
    for size in SIZES {
        let k = format!("k{size}");
        let v = store
            .compare_and_swap(&k, Expected::Absent, sized(b'k', size), Some(HOUR))
            .await
            .expect("create");
        let stored: Vec<u8> = run(&mut con, redis::cmd("GET").arg(state_key(&config, &k))).await;
        for stale in [Version(v.0 + 1), Version(v.0 - 1)] {
            let err = store
                .compare_and_swap(&k, Expected::Version(stale), sized(b'l', size), None)
                .await
                .expect_err("a stale version");
            assert_eq!(err.kind(), ErrorKind::Conflict, "{size}: {err}");
            let again: Vec<u8> = run(&mut con, redis::cmd("GET").arg(state_key(&config, &k))).await;
            assert!(again == stored, "{size}: the same bytes, header included");
            let left = pttl(&mut con, &config, &k).await;
            assert!(left > 3_500_000, "{size}: the expiry is kept: {left} ms left");
        }
        let err = store
            .compare_and_swap(&k, Expected::Absent, sized(b'l', size), None)
            .await
            .expect_err("present");
        assert_eq!(err.kind(), ErrorKind::Conflict, "{size}: {err}");
        let got = store.get(&k).await.expect("get").expect("present");
        assert!(got.value == sized(b'k', size) && got.version == v, "{size}");
        assert!(pttl(&mut con, &config, &k).await > 3_500_000);

        let absent = format!("absent{size}");
        let err = store
            .compare_and_swap(&absent, Expected::Version(v), sized(b'x', size), None)
            .await
            .expect_err("absent");
        assert_eq!(err.kind(), ErrorKind::Conflict, "{size}: {err}");
        assert_eq!(
            store.get(&absent).await.expect("get"),
            None,
            "nothing was created"
        );
    }
}

#[tokio::test]
async fn each_write_sets_or_clears_the_expiry_it_asks_for() {
    let Some(url) = url() else { return };
    let (store, config, mut con) = store(&url, "layout-ttl").await;
    for size in SIZES {
        let k = format!("k{size}");
        let v1 = store
            .compare_and_swap(&k, Expected::Absent, sized(b'1', size), Some(HOUR))
            .await
            .expect("create with an expiry");
        assert!(pttl(&mut con, &config, &k).await > 3_500_000);
        let v2 = store
            .compare_and_swap(&k, Expected::Version(v1), sized(b'2', size), None)
            .await
            .expect("without one");
        assert_eq!(
            pttl(&mut con, &config, &k).await,
            -1,
            "{size}: the expiry is cleared"
        );
        let v3 = store
            .compare_and_swap(&k, Expected::Version(v2), sized(b'3', size), Some(HOUR))
            .await
            .expect("with one again");
        assert!(pttl(&mut con, &config, &k).await > 3_500_000);
        let v4 = store
            .compare_and_swap(&k, Expected::Version(v3), sized(b'4', size), Some(HOUR / 2))
            .await
            .expect("a shorter one");
        let left = pttl(&mut con, &config, &k).await;
        assert!(
            (1..=1_800_000).contains(&left),
            "{size}: the latest write's expiry: {left} ms"
        );
        let got = store.get(&k).await.expect("get").expect("present");
        assert!(got.value == sized(b'4', size) && got.version == v4, "{size}");
        store
            .put(&k, sized(b'5', size), None)
            .await
            .expect("a put without one");
        assert_eq!(
            pttl(&mut con, &config, &k).await,
            -1,
            "{size}: a put clears it too"
        );
        assert!(v4 > v3 && v3 > v2 && v2 > v1);
    }
}

#[tokio::test]
async fn hashes_of_earlier_releases_are_read_scanned_and_replaced_on_write() {
    let Some(url) = url() else { return };
    let (store, config, mut con) = store(&url, "layout-legacy").await;
    for (key, n) in [("old/a", "70"), ("old/b", "71"), ("old/c", "127"), ("old/d", "5")] {
        let _: i64 = run(
            &mut con,
            redis::cmd("HSET")
                .arg(state_key(&config, key))
                .arg("v")
                .arg(format!("value of {key}"))
                .arg("n")
                .arg(n)
                .arg("x")
                .arg("1"),
        )
        .await;
        let _: i64 = run(
            &mut con,
            redis::cmd("PEXPIRE").arg(state_key(&config, key)).arg(3_600_000),
        )
        .await;
        let _: i64 = run(
            &mut con,
            redis::cmd("ZADD")
                .arg(format!("{}:index", config.key_prefix))
                .arg(0)
                .arg(key),
        )
        .await;
    }
    let page = store.scan("old/", None, 10).await.expect("scan");
    let seen: Vec<(String, u64)> = page
        .entries
        .iter()
        .map(|(k, v)| (k.clone(), v.version.0))
        .collect();
    let want: Vec<(String, u64)> = [("old/a", 70), ("old/b", 71), ("old/c", 127), ("old/d", 5)]
        .map(|(k, n)| (k.to_string(), n))
        .to_vec();
    assert_eq!(seen, want);
    assert_eq!(page.entries[0].1.value.as_ref(), b"value of old/a");

    let err = store
        .compare_and_swap(
            "old/a",
            Expected::Version(Version(69)),
            Bytes::from_static(b"x"),
            None,
        )
        .await
        .expect_err("stale");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let kind: String = run(&mut con, redis::cmd("TYPE").arg(state_key(&config, "old/a"))).await;
    assert_eq!(kind, "hash", "a conflict leaves the hash as it was");

    let v = store
        .compare_and_swap(
            "old/a",
            Expected::Version(Version(70)),
            Bytes::from_static(b"new"),
            None,
        )
        .await
        .expect("a write over the hash");
    assert_eq!(v, Version(71), "the version after the hash's");
    let kind: String = run(&mut con, redis::cmd("TYPE").arg(state_key(&config, "old/a"))).await;
    assert_eq!(kind, "string");
    assert_eq!(
        pttl(&mut con, &config, "old/a").await,
        -1,
        "written without an expiry"
    );
    let got = store.get("old/a").await.expect("get").expect("present");
    assert_eq!((got.value.as_ref(), got.version), (&b"new"[..], Version(71)));

    let err = store
        .compare_and_swap("old/b", Expected::Absent, Bytes::from_static(b"x"), None)
        .await
        .expect_err("present, as a hash");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert_eq!(err.context_value("actual"), Some("v71"), "{err}");

    let v = store
        .compare_and_swap(
            "old/b",
            Expected::Version(Version(71)),
            Bytes::from_static(b"b"),
            Some(HOUR),
        )
        .await
        .expect("a write over the other hash, with an expiry");
    assert!(v > Version(71));
    assert!(pttl(&mut con, &config, "old/b").await > 3_500_000);
    let got = store.get("old/b").await.expect("get").expect("present");
    assert_eq!((got.value.as_ref(), got.version), (&b"b"[..], v));

    // At the end of its block, a large value: a fresh block, read first.
    let v = store
        .compare_and_swap("old/c", Expected::Version(Version(127)), sized(b'c', 4096), None)
        .await
        .expect("a large write over a hash at the end of its block");
    assert!(v.0 > 127 && v.0 % 64 == 0, "a fresh block: {v}");
    let got = store.get("old/c").await.expect("get").expect("present");
    assert!(got.value == sized(b'c', 4096) && got.version == v);
    // A put over a hash replaces it by a string too.
    let v = store
        .put("old/d", Bytes::from_static(b"put"), None)
        .await
        .expect("put");
    let kind: String = run(&mut con, redis::cmd("TYPE").arg(state_key(&config, "old/d"))).await;
    assert_eq!(kind, "string");
    let got = store.get("old/d").await.expect("get").expect("present");
    assert_eq!((got.value.as_ref(), got.version), (&b"put"[..], v));
}

#[tokio::test]
async fn a_ttl_past_what_redis_takes_is_refused_before_anything_is_written() {
    let Some(url) = url() else { return };
    let (store, _config, _con) = store(&url, "layout-max-ttl").await;
    let forever = Some(Duration::from_secs(200 * 365 * 24 * 3600));
    let err = store
        .compare_and_swap("k", Expected::Absent, Bytes::from_static(b"v"), forever)
        .await
        .expect_err("too long");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err = store
        .put("k", Bytes::from_static(b"v"), forever)
        .await
        .expect_err("too long");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(store.get("k").await.expect("get"), None);
}
