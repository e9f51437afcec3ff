//! Compare-and-swap: conflicts, success, and exactly one winner.

use bytes::Bytes;
use tokio::runtime::{Handle, RuntimeFlavor};

use super::{expect_missing, expect_value};
use crate::conformance::util::{must, must_fail};
use crate::conformance::{Settings, unique};
use crate::error::{Error, ErrorKind, Result};
use crate::store::{Expected, StateStore, Version};

/// Asserts a CAS conflict names `expected` and `actual` in its context.
fn assert_conflict_context(e: &Error, expected: Expected, actual: &str, what: &str) {
    assert_eq!(
        e.context_value("expected"),
        Some(expected.to_string().as_str()),
        "{what}: the Conflict should carry context expected = {expected}: {e}"
    );
    assert_eq!(
        e.context_value("actual"),
        Some(actual),
        "{what}: the Conflict should carry context actual = {actual}: {e}"
    );
}

/// `Absent` creates the key once; a second `Absent` → `Conflict` with
/// `expected: absent` and `actual: <version>`, and the value is unchanged.
pub async fn cas_create_if_absent<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    let key = unique("create");
    let created = st.compare_and_swap(&key, Expected::Absent, Bytes::from_static(b"first"), None);
    let v = must(s, "CAS Absent on a missing key", created).await;
    expect_value(st, s, &key, b"first", Some(v)).await;
    let again = st.compare_and_swap(&key, Expected::Absent, Bytes::from_static(b"second"), None);
    let e = must_fail(s, "CAS Absent on an existing key", ErrorKind::Conflict, again).await;
    assert_conflict_context(
        &e,
        Expected::Absent,
        &v.to_string(),
        "CAS Absent on an existing key",
    );
    expect_value(st, s, &key, b"first", Some(v)).await;
}

/// CAS with an old version → `Conflict` naming the expected and the actual
/// version; CAS with a version on a missing key → `Conflict` with
/// `actual: absent`. Nothing is written either time.
pub async fn cas_stale_version_conflicts<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    if super::skip_unless_exact(st, "cas_stale_version_conflicts") {
        return;
    }
    let key = unique("stale");
    let v1 = must(s, "put", st.put(&key, Bytes::from_static(b"one"), None)).await;
    let v2 = must(s, "put", st.put(&key, Bytes::from_static(b"two"), None)).await;
    let stale = st.compare_and_swap(&key, Expected::Version(v1), Bytes::from_static(b"bad"), None);
    let e = must_fail(s, "CAS with a stale version", ErrorKind::Conflict, stale).await;
    assert_conflict_context(
        &e,
        Expected::Version(v1),
        &v2.to_string(),
        "CAS with a stale version",
    );
    expect_value(st, s, &key, b"two", Some(v2)).await;

    let missing = unique("stale-missing");
    let cas = st.compare_and_swap(&missing, Expected::Version(v2), Bytes::from_static(b"bad"), None);
    let e = must_fail(s, "CAS with a version on a missing key", ErrorKind::Conflict, cas).await;
    assert_conflict_context(
        &e,
        Expected::Version(v2),
        "absent",
        "CAS with a version on a missing key",
    );
    expect_missing(st, s, &missing, "its only write was a failed CAS").await;
}

/// CAS with the current version succeeds, returns a greater version, and
/// the next CAS may chain on it.
pub async fn cas_current_version_succeeds<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    if super::skip_unless_exact(st, "cas_current_version_succeeds") {
        return;
    }
    let key = unique("swap");
    let v1 = must(s, "put", st.put(&key, Bytes::from_static(b"one"), None)).await;
    let cas = st.compare_and_swap(&key, Expected::Version(v1), Bytes::from_static(b"two"), None);
    let v2 = must(s, "CAS with the current version", cas).await;
    assert!(
        v2 > v1,
        "CAS returned {v2}, not greater than the version it replaced ({v1})"
    );
    expect_value(st, s, &key, b"two", Some(v2)).await;
    let cas = st.compare_and_swap(&key, Expected::Version(v2), Bytes::from_static(b"three"), None);
    let v3 = must(s, "CAS chained on the version CAS returned", cas).await;
    assert!(v3 > v2, "CAS returned {v3}, not greater than {v2}");
    expect_value(st, s, &key, b"three", Some(v3)).await;
}

/// Runs `n` CAS calls of `key` expecting `expected` at the same time (value
/// `w<i>` for call `i`): on a multi-threaded runtime from `n` OS threads
/// released together, otherwise concurrently on this task.
async fn race<S: StateStore + ?Sized>(
    st: &S,
    s: &Settings,
    key: &str,
    expected: Expected,
    n: usize,
) -> Vec<Result<Version>> {
    let patience = s.patience;
    let call = move |i: usize| async move {
        let cas = st.compare_and_swap(key, expected, Bytes::from(format!("w{i}")), None);
        tokio::time::timeout(patience, cas)
            .await
            .unwrap_or_else(|_| panic!("CAS #{i} of {n} concurrent calls took longer than {patience:?}"))
    };
    let handle = Handle::current();
    if handle.runtime_flavor() != RuntimeFlavor::MultiThread {
        return futures_util::future::join_all((0..n).map(call)).await;
    }
    tokio::task::block_in_place(|| {
        let start = std::sync::Barrier::new(n);
        std::thread::scope(|scope| {
            let threads: Vec<_> = (0..n)
                .map(|i| {
                    let (handle, start, call) = (&handle, &start, &call);
                    scope.spawn(move || {
                        start.wait();
                        handle.block_on(call(i))
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("a CAS thread panicked"))
                .collect()
        })
    })
}

/// Checks a race: exactly one winner, every other call `Conflict`, and the
/// key holds the winner's value and version.
async fn assert_one_winner<S: StateStore + ?Sized>(
    st: &S,
    s: &Settings,
    key: &str,
    results: Vec<Result<Version>>,
) {
    let mut winners = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(v) => winners.push((i, v)),
            Err(e) if e.kind() == ErrorKind::Conflict => {}
            Err(e) => panic!("concurrent CAS #{i} failed with something other than Conflict: {e}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of the concurrent CAS calls should win; winners (call, version): {winners:?}"
    );
    let (i, v) = winners[0];
    expect_value(st, s, key, format!("w{i}").as_bytes(), Some(v)).await;
}

/// 16 CAS calls at once expecting the same version → exactly one wins, 15
/// get `Conflict`; likewise 16 creates (`Absent`) of a fresh key.
pub async fn cas_concurrent_single_winner<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    if super::skip_unless_exact(st, "cas_concurrent_single_winner") {
        return;
    }
    const N: usize = 16;
    let key = unique("race");
    let v0 = must(s, "put", st.put(&key, Bytes::from_static(b"start"), None)).await;
    let results = race(st, s, &key, Expected::Version(v0), N).await;
    assert_one_winner(st, s, &key, results).await;

    let key = unique("race-create");
    let results = race(st, s, &key, Expected::Absent, N).await;
    assert_one_winner(st, s, &key, results).await;
}
