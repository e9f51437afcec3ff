//! Reads, writes, versions, deletes and batches.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{expect_missing, expect_value, scan_all};
use crate::conformance::util::{must, must_fail, pattern};
use crate::conformance::{Settings, skip, unique};
use crate::error::ErrorKind;
use crate::store::{Expected, PutEntry, StateStore};

/// A key never written reads as `None`.
pub async fn get_missing_is_none<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    expect_missing(st, s, &unique("missing"), "never written").await;
    expect_missing(
        st,
        s,
        &format!("{}/nested/key", unique("missing")),
        "never written",
    )
    .await;
}

/// A binary value (`0x00`, `0xff`) reads back unchanged with the version
/// `put` returned.
pub async fn put_get_round_trip<T: StateStore + ?Sized>(st: &T, s: &Settings) {
    let key = unique("rt");
    let value = vec![0x00, 0xff, 0x00, b'v', 0x7f, 0x80, 0xff, 0x00];
    let version = must(s, "put", st.put(&key, Bytes::from(value.clone()), None)).await;
    expect_value(st, s, &key, &value, Some(version)).await;
}

/// An empty value is a value: `Some(empty)`, not `None`; also via CAS.
pub async fn empty_value_round_trip<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    let key = unique("empty");
    let version = must(s, "put of an empty value", st.put(&key, Bytes::new(), None)).await;
    expect_value(st, s, &key, b"", Some(version)).await;
    let key = unique("empty-cas");
    let version = st.compare_and_swap(&key, Expected::Absent, Bytes::new(), None);
    let version = must(s, "CAS create of an empty value", version).await;
    expect_value(st, s, &key, b"", Some(version)).await;
}

/// A 1 MiB value reads back intact (skipped when `max_value` is smaller).
pub async fn large_value_round_trip<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    let caps = st.capabilities();
    if caps.max_value < 1 << 20 {
        skip("large_value_round_trip", caps.name, "max_value >= 1 MiB");
        return;
    }
    let key = unique("large");
    let value = pattern(1 << 20);
    let version = must(s, "put of 1 MiB", st.put(&key, Bytes::from(value.clone()), None)).await;
    expect_value(st, s, &key, &value, Some(version)).await;
}

/// Keys are opaque text: spaces, glob and subject characters
/// (`* ? [ ] \ > %`), non-ASCII and a 1024-byte key round-trip, and a scan
/// prefix containing `*` or `[` matches literally (no glob expansion).
pub async fn special_character_keys<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    let base = unique("special");
    let suffixes = [
        "a b",
        "star*",
        "star*x",
        "q?",
        "br[ack]et",
        "br[",
        "back\\slash",
        "ü/ñ/日本",
        "dot.>.x",
        "%2F%",
        ":colon",
        "quote\"'",
    ];
    let mut keys: Vec<String> = suffixes.iter().map(|x| format!("{base}/{x}")).collect();
    let long = format!("{base}/long/");
    keys.push(format!(
        "{long}{}",
        "x".repeat(crate::validate::MAX_KEY_LEN - long.len())
    ));
    for key in &keys {
        let version = must(
            s,
            format_args!("put {key:?}"),
            st.put(key, Bytes::from(key.clone()), None),
        )
        .await;
        expect_value(st, s, key, key.as_bytes(), Some(version)).await;
    }
    for (prefix, want) in [
        ("star*", vec!["star*", "star*x"]),
        ("br[", vec!["br[", "br[ack]et"]),
        ("q?", vec!["q?"]),
    ] {
        let prefix = format!("{base}/{prefix}");
        let mut got: Vec<String> = scan_all(st, s, &prefix, 100, 10)
            .await
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        got.sort();
        got.dedup();
        let want: Vec<String> = want.iter().map(|x| format!("{base}/{x}")).collect();
        assert_eq!(got, want, "scan of the literal prefix {prefix:?}");
    }
    let all = scan_all(st, s, &format!("{base}/"), 5, keys.len()).await;
    let got: BTreeMap<_, _> = all.into_iter().map(|(k, v)| (k, v.value)).collect();
    let want: BTreeMap<_, _> = keys.iter().map(|k| (k.clone(), Bytes::from(k.clone()))).collect();
    assert_eq!(got, want, "scan of every special key");
    for key in &keys {
        assert!(
            must(s, format_args!("delete {key:?}"), st.delete(key)).await,
            "delete {key:?} should find it"
        );
    }
}

/// Each put of one key returns a greater version; get returns the last.
pub async fn put_versions_increase<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    if super::skip_unless_exact(st, "put_versions_increase") {
        return;
    }
    let key = unique("versions");
    let mut last = None;
    for i in 0..5u8 {
        let v = must(
            s,
            format_args!("put #{i}"),
            st.put(&key, Bytes::from(vec![i]), None),
        )
        .await;
        if let Some(prev) = last {
            assert!(
                v > prev,
                "put #{i} returned {v}, not greater than the previous {prev}"
            );
        }
        last = Some(v);
    }
    expect_value(st, s, &key, &[4], last).await;
}

/// delete → `true`, then `false`; the key reads as `None`; deleting a key
/// never written → `false`.
pub async fn delete_twice<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    let key = unique("del");
    assert!(
        !must(s, "delete of a key never written", st.delete(&key)).await,
        "delete of a missing key → false"
    );
    must(s, "put", st.put(&key, Bytes::from_static(b"x"), None)).await;
    assert!(
        must(s, "first delete", st.delete(&key)).await,
        "first delete of an existing key should return true"
    );
    expect_missing(st, s, &key, "deleted").await;
    assert!(
        !must(s, "second delete", st.delete(&key)).await,
        "second delete should return false"
    );
}

/// A key deleted and re-created (by put, or by CAS `Absent`) gets a version
/// greater than any before the delete, so a CAS with an old version fails.
pub async fn version_grows_across_delete<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    if super::skip_unless_exact(st, "version_grows_across_delete") {
        return;
    }
    let key = unique("aba");
    let v1 = must(s, "put", st.put(&key, Bytes::from_static(b"a"), None)).await;
    assert!(
        must(s, "delete", st.delete(&key)).await,
        "delete should find the key"
    );
    let v2 = must(
        s,
        "put after delete",
        st.put(&key, Bytes::from_static(b"b"), None),
    )
    .await;
    assert!(
        v2 > v1,
        "version after delete + re-create ({v2}) should be greater than before ({v1})"
    );
    let stale = st.compare_and_swap(&key, Expected::Version(v1), Bytes::from_static(b"stale"), None);
    must_fail(
        s,
        "CAS with the version from before the delete (ABA)",
        ErrorKind::Conflict,
        stale,
    )
    .await;
    assert!(
        must(s, "delete", st.delete(&key)).await,
        "delete should find the key"
    );
    let v3 = st.compare_and_swap(&key, Expected::Absent, Bytes::from_static(b"c"), None);
    let v3 = must(s, "CAS create after delete", v3).await;
    assert!(
        v3 > v2,
        "version after delete + CAS create ({v3}) should be greater than before ({v2})"
    );
    expect_value(st, s, &key, b"c", Some(v3)).await;
}

/// `put_batch` returns one version per entry, in order; each entry reads
/// back; a key repeated in the batch keeps its last write, with the greater
/// version. An empty batch returns no versions.
pub async fn put_batch_round_trip<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    let empty = must(s, "empty put_batch", st.put_batch(Vec::new())).await;
    assert!(empty.is_empty(), "empty put_batch returned versions {empty:?}");
    let base = unique("batch");
    let mut entries: Vec<PutEntry> = (0..10)
        .map(|i| PutEntry::new(format!("{base}/{i}"), vec![i as u8, 0x00, 0xff], None))
        .collect();
    entries.push(PutEntry::new(format!("{base}/3"), &b"second"[..], None));
    let versions = must(s, "put_batch of 11", st.put_batch(entries.clone())).await;
    assert_eq!(
        versions.len(),
        entries.len(),
        "put_batch should return one version per entry"
    );
    for (i, entry) in entries.iter().enumerate().take(10).filter(|(i, _)| *i != 3) {
        expect_value(st, s, &entry.key, &entry.value, Some(versions[i])).await;
    }
    if super::exact_versions(st) {
        assert!(
            versions[10] > versions[3],
            "a key written twice in one batch: second version {} should be greater than the first {}",
            versions[10],
            versions[3]
        );
    }
    expect_value(st, s, &format!("{base}/3"), b"second", Some(versions[10])).await;
}
