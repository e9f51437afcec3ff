//! Expiry: TTLs end values, not earlier than asked, and scans forget them.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{expect_value, scan_all};
use crate::conformance::util::{must, require};
use crate::conformance::{Settings, unique};
use crate::store::{Expected, PutEntry, StateStore, Version};

/// The TTL the behaviours use.
const TTL: Duration = Duration::from_millis(300);
/// Slack allowed when checking that a value did not expire early.
const TOLERANCE: Duration = Duration::from_millis(10);

/// Reads `key` right after a write started at `written`: it must hold
/// `value`, unless the read itself finished after the TTL (a slow backend).
async fn expect_fresh<S: StateStore + ?Sized>(
    st: &S,
    s: &Settings,
    key: &str,
    value: &[u8],
    written: Instant,
) {
    let got = must(s, format_args!("get {key:?}"), st.get(key)).await;
    if written.elapsed() < TTL {
        let got = got.unwrap_or_else(|| panic!("{key:?} vanished before its {TTL:?} TTL"));
        assert_eq!(got.value, value, "value of {key:?} before its TTL");
    }
}

/// Polls `key` until it reads as `None`, within TTL + `patience`; asserts
/// it was not gone before the TTL (measured from `written`, taken before
/// the write started).
async fn expect_expiry<S: StateStore + ?Sized>(st: &S, s: &Settings, key: &str, written: Instant) {
    let deadline = written + TTL + s.patience;
    loop {
        let got = must(s, format_args!("get {key:?}"), st.get(key)).await;
        let elapsed = written.elapsed();
        if got.is_none() {
            assert!(
                elapsed + TOLERANCE >= TTL,
                "{key:?} expired after {elapsed:?}, before its {TTL:?} TTL"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key:?} with a {TTL:?} TTL is still there after {elapsed:?} (patience {:?})",
            s.patience
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A value put with a 300 ms TTL is visible at once, gone within
/// TTL + `patience`, and not gone before the TTL.
pub async fn ttl_expiry<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    require!(st.capabilities(), "ttl_expiry", ttl);
    let key = unique("ttl");
    let written = Instant::now();
    must(
        s,
        "put with TTL",
        st.put(&key, Bytes::from_static(b"brief"), Some(TTL)),
    )
    .await;
    expect_fresh(st, s, &key, b"brief", written).await;
    expect_expiry(st, s, &key, written).await;
    let again = must(
        s,
        "put after expiry",
        st.put(&key, Bytes::from_static(b"back"), None),
    )
    .await;
    expect_value(st, s, &key, b"back", Some(again)).await;
}

/// The TTL belongs to the latest write: a put without TTL after one with a
/// TTL keeps the value past the old TTL; a later put with a TTL expires.
pub async fn ttl_follows_latest_write<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    require!(st.capabilities(), "ttl_follows_latest_write", ttl);
    let key = unique("ttl-latest");
    must(
        s,
        "put with TTL",
        st.put(&key, Bytes::from_static(b"a"), Some(TTL)),
    )
    .await;
    let v = must(s, "put without TTL", st.put(&key, Bytes::from_static(b"b"), None)).await;
    tokio::time::sleep(TTL + s.quiet).await;
    expect_value(st, s, &key, b"b", Some(v)).await;
    let written = Instant::now();
    must(
        s,
        "put with TTL again",
        st.put(&key, Bytes::from_static(b"c"), Some(TTL)),
    )
    .await;
    expect_fresh(st, s, &key, b"c", written).await;
    expect_expiry(st, s, &key, written).await;
}

/// CAS `Absent` with a TTL creates an expiring value; once expired the key
/// is absent for CAS again. CAS on a version with a TTL expires too.
pub async fn cas_with_ttl<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    require!(st.capabilities(), "cas_with_ttl", ttl);
    let key = unique("cas-ttl");
    let written = Instant::now();
    let cas = st.compare_and_swap(&key, Expected::Absent, Bytes::from_static(b"lease"), Some(TTL));
    must(s, "CAS Absent with TTL", cas).await;
    expect_fresh(st, s, &key, b"lease", written).await;
    expect_expiry(st, s, &key, written).await;

    let cas = st.compare_and_swap(&key, Expected::Absent, Bytes::from_static(b"next"), None);
    let v: Version = must(s, "CAS Absent on an expired key", cas).await;
    expect_value(st, s, &key, b"next", Some(v)).await;
    let written = Instant::now();
    let cas = st.compare_and_swap(
        &key,
        Expected::Version(v),
        Bytes::from_static(b"renewed"),
        Some(TTL),
    );
    let v2 = must(s, "CAS on a version with TTL", cas).await;
    assert!(v2 > v, "CAS returned {v2}, not greater than {v}");
    expect_fresh(st, s, &key, b"renewed", written).await;
    expect_expiry(st, s, &key, written).await;
}

/// Five keys with a TTL and five without under one prefix: once the TTL'd
/// keys read as `None`, a scan returns exactly the five others.
pub async fn scan_skips_expired<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    require!(st.capabilities(), "scan_skips_expired", ttl);
    let base = unique("scan-ttl");
    let written = Instant::now();
    let entries: Vec<PutEntry> = (0..10)
        .map(|i| PutEntry::new(format!("{base}/{i}"), vec![i as u8], (i % 2 == 0).then_some(TTL)))
        .collect();
    must(s, "put_batch", st.put_batch(entries)).await;
    for i in (0..10).step_by(2) {
        expect_expiry(st, s, &format!("{base}/{i}"), written).await;
    }
    let got: BTreeSet<String> = scan_all(st, s, &format!("{base}/"), 3, 10)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let want: BTreeSet<String> = (1..10).step_by(2).map(|i| format!("{base}/{i}")).collect();
    assert_eq!(
        got, want,
        "scan after the TTL'd keys expired should return only the keys without TTL"
    );
}
