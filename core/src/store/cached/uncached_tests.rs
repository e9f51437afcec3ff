//! Tests of keys left out of the cache ([`CacheConfig::uncached`]): never
//! cached, never queued behind, and still ordered after the queue.

use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::error::ErrorKind;
use crate::store::{MemoryStore, PutEntry};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Write-behind that never flushes by itself (an hour, 512 writes).
fn held_behind() -> CacheConfig {
    CacheConfig::default()
        .with_write_mode(WriteMode::WriteBehind {
            interval: Duration::from_secs(3600),
            max_batch: 512,
        })
        .with_uncached_prefix("saga/")
}

async fn value_of(store: &impl StateStore, key: &str) -> Option<Bytes> {
    store.get(key).await.expect("get").map(|v| v.value)
}

#[tokio::test]
async fn an_uncached_key_is_read_from_the_store_every_time() {
    let store = MemoryStore::new();
    let cached = CachedStore::new(
        store.clone(),
        CacheConfig::default().with_uncached_prefix("saga/"),
    )
    .expect("new");
    let v1 = cached.put("saga/1", b("one"), None).await.expect("put");
    cached.put("other", b("x"), None).await.expect("put");
    assert_eq!(value_of(&cached, "saga/1").await, Some(b("one")));
    // Written behind the cache's back (another instance): seen at once.
    store
        .compare_and_swap("saga/1", Expected::Version(v1), b("two"), None)
        .await
        .expect("cas on the store");
    assert_eq!(value_of(&cached, "saga/1").await, Some(b("two")));
    store.put("other", b("y"), None).await.expect("put");
    assert_eq!(
        value_of(&cached, "other").await,
        Some(b("x")),
        "a cached key is served from the cache"
    );
    let stats = cached.stats();
    assert_eq!((stats.hits, stats.misses), (1, 0), "{stats:?}");
    assert!(cached.shared.cache.get("saga/1").await.is_none(), "never cached");
    let v = cached.get("saga/1").await.expect("get").expect("present").version;
    cached
        .compare_and_swap("saga/1", Expected::Version(v), b("three"), None)
        .await
        .expect("cas");
    assert!(
        cached.shared.cache.get("saga/1").await.is_none(),
        "a CAS caches nothing"
    );
    assert!(cached.delete("saga/1").await.expect("delete"));
    assert_eq!(value_of(&store, "saga/1").await, None);
}

#[tokio::test]
async fn write_behind_writes_uncached_keys_at_once_and_flushes_before_their_cas() {
    tokio::time::pause();
    let store = MemoryStore::new();
    let cached = CachedStore::new(store.clone(), held_behind()).expect("new");
    cached.put("w/state", b("step's write"), None).await.expect("put");
    assert_eq!(value_of(&store, "w/state").await, None, "queued");
    let v = cached.put("saga/1", b("started"), None).await.expect("put");
    assert_ne!(v, Version::PENDING, "a stored version");
    assert_eq!(value_of(&store, "saga/1").await, Some(b("started")));
    assert_eq!(value_of(&store, "w/state").await, None, "still queued");
    // The transaction state that records the step lands after the step's
    // own writes: its CAS flushes the queue first.
    cached
        .compare_and_swap("saga/1", Expected::Version(v), b("step done"), None)
        .await
        .expect("cas");
    assert_eq!(value_of(&store, "w/state").await, Some(b("step's write")));
    assert_eq!(value_of(&store, "saga/1").await, Some(b("step done")));
}

#[tokio::test]
async fn a_batch_with_an_uncached_key_is_written_through_whole() {
    tokio::time::pause();
    let store = MemoryStore::new();
    let cached = CachedStore::new(store.clone(), held_behind()).expect("new");
    let versions = cached
        .put_batch(vec![
            PutEntry::new("w/a", b("a"), None),
            PutEntry::new("saga/1", b("s"), None),
        ])
        .await
        .expect("batch");
    assert!(versions.iter().all(|v| *v != Version::PENDING), "{versions:?}");
    assert_eq!(value_of(&store, "w/a").await, Some(b("a")));
    assert_eq!(value_of(&store, "saga/1").await, Some(b("s")));
    let only = cached
        .put_batch(vec![PutEntry::new("saga/2", b("t"), None)])
        .await
        .expect("batch");
    assert_ne!(only[0], Version::PENDING);
    assert_eq!(value_of(&store, "saga/2").await, Some(b("t")));
    // A batch of cached keys only is still written behind.
    let queued = cached
        .put_batch(vec![PutEntry::new("w/b", b("b"), None)])
        .await
        .expect("batch");
    assert_eq!(queued, [Version::PENDING]);
    assert_eq!(value_of(&store, "w/b").await, None);
}

#[tokio::test]
async fn a_mixed_batch_lands_after_the_queued_writes_of_its_keys() {
    tokio::time::pause();
    let store = MemoryStore::new();
    let cached = CachedStore::new(store.clone(), held_behind()).expect("new");
    cached.put("w/a", b("v1"), None).await.expect("put");
    cached
        .put_batch(vec![
            PutEntry::new("w/a", b("v2"), None),
            PutEntry::new("saga/1", b("s"), None),
        ])
        .await
        .expect("batch");
    assert_eq!(value_of(&cached, "w/a").await, Some(b("v2")), "not the queued v1");
    cached.flush().await.expect("flush");
    assert_eq!(
        value_of(&store, "w/a").await,
        Some(b("v2")),
        "v1 never lands after v2"
    );
    assert!(
        cached.shared.cache.get("saga/1").await.is_none(),
        "the batch's uncached key is not cached"
    );
}

#[test]
fn an_empty_uncached_prefix_is_refused() {
    let err = CacheConfig::default()
        .with_uncached_prefix("")
        .check()
        .expect_err("every key would be left out");
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().contains("use no cache instead"), "{err}");
}
