//! Tests of the quota bookkeeping: each feeds it one kind of case.

use super::*;
use crate::store::MemoryStore;

fn quota(keys: u64, bytes: u64) -> StateQuota {
    StateQuota::new(keys, bytes)
}

/// Writes `key` (a name inside namespace `ns`) as the host does: reserve,
/// then put.
async fn write(store: &MemoryStore, ns: &str, q: &StateQuota, key: &str, len: usize) -> Result<(), KvError> {
    let full = format!("kv/{ns}/{key}");
    let old = store.get(&full).await?.map(|v| v.value.len());
    let change = Change::of_write(key, old, len);
    if change.grows() {
        reserve(store, ns, q, change).await?;
    }
    store.put(&full, Bytes::from(vec![b'x'; len]), None).await?;
    if !change.grows() {
        release(store, ns, change).await;
    }
    Ok(())
}

/// [`write`], which must be accepted (`what` says why it should be).
async fn accept(store: &MemoryStore, ns: &str, q: &StateQuota, key: &str, len: usize, what: &str) {
    if let Err(e) = write(store, ns, q, key, len).await {
        panic!("{what}: {key} refused: {}", refused(Err(e)));
    }
}

fn refused(r: Result<(), KvError>) -> String {
    match r {
        Err(KvError::Other(m)) => m,
        Err(_) => "another error".into(),
        Ok(()) => "accepted".into(),
    }
}

#[tokio::test]
async fn writes_past_the_key_bound_are_refused_with_a_clear_message() {
    let store = MemoryStore::new();
    let q = quota(3, 1 << 20);
    for k in ["b/1", "b/2", "b/3"] {
        accept(&store, "ns", &q, k, 10, "within the quota").await;
    }
    // Overwriting an existing key adds no key.
    accept(&store, "ns", &q, "b/2", 12, "an overwrite").await;
    let message = refused(write(&store, "ns", &q, "b/4", 10).await);
    assert!(message.starts_with(QUOTA_EXCEEDED), "{message}");
    assert!(
        message.contains("\"ns\"") && message.contains("4 keys") && message.contains("3 keys"),
        "{message}"
    );
    assert!(
        store.get("kv/ns/b/4").await.expect("get").is_none(),
        "nothing written"
    );
    // Another namespace has its own record.
    accept(&store, "other", &q, "b/4", 10, "another namespace").await;
}

#[tokio::test]
async fn bytes_count_keys_and_values_and_shrinking_gives_them_back() {
    let store = MemoryStore::new();
    let q = quota(100, 100);
    // "b/k" is 3 bytes: 3 + 90 = 93 of 100.
    accept(&store, "ns", &q, "b/k", 90, "93 bytes").await;
    let message = refused(write(&store, "ns", &q, "b/j", 10).await);
    assert!(message.starts_with(QUOTA_EXCEEDED), "{message}");
    accept(&store, "ns", &q, "b/k", 10, "shrink").await;
    accept(&store, "ns", &q, "b/j", 10, "room again").await;
}

/// Values that vanish without the host knowing (expired, or removed
/// behind its back) are forgotten by the recount before a refusal.
#[tokio::test]
async fn a_refusal_is_judged_against_a_fresh_count() {
    let store = MemoryStore::new();
    let q = quota(2, 1 << 20);
    accept(&store, "ns", &q, "b/1", 1, "1").await;
    accept(&store, "ns", &q, "b/2", 1, "2").await;
    store
        .delete("kv/ns/b/1")
        .await
        .expect("delete behind the record's back");
    accept(&store, "ns", &q, "b/3", 1, "recounted: 2 keys").await;
    let message = refused(write(&store, "ns", &q, "b/4", 1).await);
    assert!(message.contains("3 keys"), "{message}");
}

#[tokio::test]
async fn a_damaged_record_is_recounted_not_trusted() {
    let store = MemoryStore::new();
    let q = quota(1, 1 << 20);
    store
        .put("kvmeta/ns/usage", Bytes::from_static(b"junk"), None)
        .await
        .expect("put");
    accept(&store, "ns", &q, "b/1", 1, "recounted: empty").await;
    let message = refused(write(&store, "ns", &q, "b/2", 1).await);
    assert!(message.starts_with(QUOTA_EXCEEDED), "{message}");
}

#[test]
fn an_allowance_spends_what_it_holds_and_returns_what_passes_its_cap() {
    let allowance = Allowance::default();
    let c = |keys, bytes| Change { keys, bytes };
    assert!(!allowance.take(c(1, 10)), "empty");
    assert_eq!(
        allowance.refill(c(3, 100), c(2, 1000)),
        c(1, 0),
        "one key past the cap"
    );
    assert!(allowance.take(c(1, 10)));
    assert!(allowance.take(c(1, 90)));
    assert!(!allowance.take(c(0, 1)), "no bytes left");
    assert!(!allowance.take(c(1, 0)), "no keys left");
    assert_eq!(chunk(&StateQuota::default()), c(1000, (64 << 20) / 100));
    assert_eq!(chunk(&StateQuota::new(3, 50)), c(1, 1));
}

#[test]
fn changes_of_writes_and_deletes() {
    assert_eq!(Change::of_write("ab", None, 3), Change { keys: 1, bytes: 5 });
    assert_eq!(Change::of_write("ab", Some(5), 3), Change { keys: 0, bytes: -2 });
    assert_eq!(Change::of_delete("ab", 3), Change { keys: -1, bytes: -5 });
    assert!(!Change::of_write("ab", Some(5), 3).grows());
    let usage = |keys, bytes, recounted_ms| Usage {
        keys,
        bytes,
        recounted_ms,
    };
    assert_eq!(Usage::decode(b"3 40"), Some(usage(3, 40, 0)));
    assert_eq!(Usage::decode(b"3 40 7"), Some(usage(3, 40, 7)));
    assert_eq!(Usage::decode(&usage(3, 40, 7).encode()), Some(usage(3, 40, 7)));
    assert_eq!(Usage::decode(b"3"), None);
    assert_eq!(Usage::decode(b"3 40 7 1"), None);
}
