//! Prefix scans with paging.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::scan_all;
use crate::conformance::util::must;
use crate::conformance::{Settings, unique};
use crate::store::{StateStore, Version};

/// 25 keys under `<base>/in/` and 5 beside it (`<base>/in`, `<base>/i`,
/// `<base>/out/…`), scanned in pages of at most 7: every page respects the
/// limit, the union is exactly the 25 with their values and versions, and
/// with `ordered_scan` the keys come in ascending order, each once. A prefix
/// with no keys scans as one empty, final page.
pub async fn scan_prefix_paging<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    let base = unique("scan");
    let prefix = format!("{base}/in/");
    let mut want: BTreeMap<String, (Bytes, Version)> = BTreeMap::new();
    // Written out of order so an ordered result is the store's doing.
    for i in (0..25).rev() {
        let key = format!("{prefix}{i:02}");
        let value = Bytes::from(format!("value {i}"));
        let v = must(s, format_args!("put {key:?}"), st.put(&key, value.clone(), None)).await;
        want.insert(key, (value, v));
    }
    let others = [
        format!("{base}/in"),
        format!("{base}/i"),
        format!("{base}/out/1"),
        format!("{base}/out/2"),
        format!("{base}/inn/1"),
    ];
    for key in &others {
        must(
            s,
            format_args!("put {key:?}"),
            st.put(key, Bytes::from_static(b"other"), None),
        )
        .await;
    }

    let empty = must(
        s,
        "scan of an unused prefix",
        st.scan(&format!("{base}/none/"), None, 7),
    )
    .await;
    assert!(
        empty.entries.is_empty(),
        "scan of an unused prefix returned {:?}",
        empty.entries
    );
    assert!(
        empty.cursor.is_none(),
        "scan of an unused prefix returned a cursor"
    );

    let pages = scan_all(st, s, &prefix, 7, want.len()).await;
    let mut got = BTreeMap::new();
    for (key, v) in &pages {
        got.insert(key.clone(), (v.value.clone(), v.version));
    }
    let missing: BTreeSet<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: BTreeSet<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "scan {prefix:?}: missing {missing:?}, extra {extra:?}"
    );
    if !super::exact_versions(st) {
        // Write-behind: versions read back are the store's, not the ones
        // the writes returned (`Version::PENDING`); compare values only.
        let values = |m: &BTreeMap<String, (Bytes, crate::store::Version)>| {
            m.iter()
                .map(|(k, (v, _))| (k.clone(), v.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            values(&got),
            values(&want),
            "scan {prefix:?} returned other values than written"
        );
    } else {
        assert_eq!(
            got, want,
            "scan {prefix:?} returned other values or versions than written"
        );
    }
    if st.capabilities().ordered_scan {
        let keys: Vec<&String> = pages.iter().map(|(k, _)| k).collect();
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "ordered_scan is declared but keys came out of order or repeated: {keys:?}"
        );
        assert_eq!(
            keys.len(),
            want.len(),
            "ordered_scan is declared but keys repeated"
        );
    }
}
