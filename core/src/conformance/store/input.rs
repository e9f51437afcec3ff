//! Bad input: typed errors naming the value, and nothing written.

use std::time::Duration;

use bytes::Bytes;

use super::expect_missing;
use crate::conformance::util::{OVERSIZE_CHECK_LIMIT, assert_names, must_fail};
use crate::conformance::{Settings, skip, unique};
use crate::error::ErrorKind;
use crate::store::{Expected, PutEntry, StateStore};

/// An oversized value (`max_value + 1` bytes) if one may be allocated for a
/// check; otherwise prints a visible skip for that check.
fn oversized(test: &str, backend: &str, max: usize) -> Option<Bytes> {
    if max >= OVERSIZE_CHECK_LIMIT {
        skip(
            test,
            backend,
            "a max_value small enough to exceed in a test (< 64 MiB)",
        );
        return None;
    }
    Some(Bytes::from(vec![0u8; max + 1]))
}

/// One bad entry fails the whole batch and nothing is written: an empty
/// key, a control character in a key, a zero TTL, an oversized value.
pub async fn put_batch_invalid_entry_writes_nothing<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    let caps = st.capabilities();
    let base = unique("badbatch");
    let (a, b) = (format!("{base}/a"), format!("{base}/b"));
    let good = |key: &str| PutEntry::new(key, &b"good"[..], None);
    let mut cases = vec![
        (
            "an empty key",
            PutEntry::new("", &b"x"[..], None),
            ErrorKind::InvalidInput,
            "key",
        ),
        (
            "a control character in a key",
            PutEntry::new(format!("{base}/\n"), &b"x"[..], None),
            ErrorKind::InvalidInput,
            "key",
        ),
        (
            "a zero TTL",
            PutEntry::new(format!("{base}/z"), &b"x"[..], Some(Duration::ZERO)),
            ErrorKind::InvalidInput,
            "ttl",
        ),
    ];
    let too_big = oversized(
        "put_batch_invalid_entry_writes_nothing",
        caps.name,
        caps.max_value,
    );
    let size = (caps.max_value + 1).to_string();
    if let Some(value) = too_big {
        cases.push((
            "an oversized value",
            PutEntry::new(format!("{base}/big"), value, None),
            ErrorKind::TooLarge,
            size.as_str(),
        ));
    }
    for (what, bad, kind, named) in cases {
        let bad_key = bad.key.clone();
        let batch = vec![good(&a), bad, good(&b)];
        let what = format!("put_batch with {what}");
        let e = must_fail(s, &what, kind, st.put_batch(batch)).await;
        assert_names(&e, named, &what);
        expect_missing(st, s, &a, &format!("written only by a failed {what}")).await;
        expect_missing(st, s, &b, &format!("written only by a failed {what}")).await;
        if !bad_key.is_empty() && !bad_key.contains('\n') {
            expect_missing(st, s, &bad_key, &format!("written only by a failed {what}")).await;
        }
    }
}

/// Every operation refuses bad keys (empty, control character, over 1024
/// bytes) with `InvalidInput` naming the key; put and CAS refuse a zero TTL
/// (`InvalidInput`, naming `ttl`) and an oversized value (`TooLarge`, naming
/// the size) and write nothing; scan refuses `limit` 0 and a prefix with a
/// control character.
pub async fn rejects_bad_input<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    let caps = st.capabilities();
    let v = || Bytes::from_static(b"v");
    let long = "k".repeat(crate::validate::MAX_KEY_LEN + 1);
    for key in ["", "a\nb", "tab\there", long.as_str()] {
        let what = |op: &str| format!("{op} with key {:?}", key.get(..20).unwrap_or(key));
        let kind = ErrorKind::InvalidInput;
        assert_names(
            &must_fail(s, what("get"), kind, st.get(key)).await,
            "key",
            what("get"),
        );
        assert_names(
            &must_fail(s, what("put"), kind, st.put(key, v(), None)).await,
            "key",
            what("put"),
        );
        assert_names(
            &must_fail(s, what("delete"), kind, st.delete(key)).await,
            "key",
            what("delete"),
        );
        let cas = st.compare_and_swap(key, Expected::Absent, v(), None);
        assert_names(&must_fail(s, what("CAS"), kind, cas).await, "key", what("CAS"));
        let batch = st.put_batch(vec![PutEntry::new(key, v(), None)]);
        assert_names(
            &must_fail(s, what("put_batch"), kind, batch).await,
            "key",
            what("put_batch"),
        );
    }

    let key = unique("bad");
    let e = must_fail(
        s,
        "put with a zero TTL",
        ErrorKind::InvalidInput,
        st.put(&key, v(), Some(Duration::ZERO)),
    );
    assert_names(&e.await, "ttl", "put with a zero TTL");
    let cas = st.compare_and_swap(&key, Expected::Absent, v(), Some(Duration::ZERO));
    assert_names(
        &must_fail(s, "CAS with a zero TTL", ErrorKind::InvalidInput, cas).await,
        "ttl",
        "CAS with a zero TTL",
    );
    expect_missing(st, s, &key, "its only writes had a zero TTL").await;

    if let Some(big) = oversized("rejects_bad_input", caps.name, caps.max_value) {
        let size = big.len().to_string();
        let e = must_fail(
            s,
            "put of an oversized value",
            ErrorKind::TooLarge,
            st.put(&key, big.clone(), None),
        );
        assert_names(&e.await, &size, "put of an oversized value");
        let cas = st.compare_and_swap(&key, Expected::Absent, big, None);
        assert_names(
            &must_fail(s, "CAS of an oversized value", ErrorKind::TooLarge, cas).await,
            &size,
            "CAS of an oversized value",
        );
        expect_missing(st, s, &key, "its only writes were oversized").await;
    }

    let e = must_fail(
        s,
        "scan with limit 0",
        ErrorKind::InvalidInput,
        st.scan(&key, None, 0),
    )
    .await;
    assert_names(&e, "limit", "scan with limit 0");
    let e = must_fail(
        s,
        "scan with a control character in the prefix",
        ErrorKind::InvalidInput,
        st.scan("a\u{1}", None, 10),
    );
    assert_names(&e.await, "prefix", "scan with a control character in the prefix");
}
