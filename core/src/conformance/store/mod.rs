//! State-store behaviours: each is `pub async fn name<S: StateStore + ?Sized>(st: &S, s: &Settings)`,
//! panics on a violation and skips (visibly) what the backend's
//! [`StoreCapabilities`](crate::StoreCapabilities) say it lacks.
//!
//! | behaviour | checks | needs |
//! |---|---|---|
//! | [`get_missing_is_none`] | a key never written reads as `None` | — |
//! | [`put_get_round_trip`] | a binary value (`0x00`, `0xff`) reads back with the version `put` returned | — |
//! | [`empty_value_round_trip`] | an empty value is a value, not a missing key | — |
//! | [`large_value_round_trip`] | a 1 MiB value reads back intact | `max_value` ≥ 1 MiB |
//! | [`special_character_keys`] | keys with spaces, `* ? [ ] \ > %`, non-ASCII, 1024 bytes: round trip, exact-prefix scan (no glob) | — |
//! | [`put_versions_increase`] | each put of a key returns a greater version; get returns the last | — |
//! | [`delete_twice`] | delete → `true`, again → `false`; a never-written key → `false` | — |
//! | [`version_grows_across_delete`] | a re-created key's version is greater than before the delete (no ABA) | — |
//! | [`cas_create_if_absent`] | `Absent` creates once; again → `Conflict` (`expected: absent`, `actual: vN`) | — |
//! | [`cas_stale_version_conflicts`] | an old version, or a version of a missing key → `Conflict` naming both; nothing written | — |
//! | [`cas_current_version_succeeds`] | the current version swaps and returns a greater version | — |
//! | [`cas_concurrent_single_winner`] | 16 parallel CAS expecting one state: exactly one wins, the rest `Conflict` | — |
//! | [`ttl_expiry`] | a 300 ms TTL value is visible, then gone (not early) within `patience` | ttl |
//! | [`ttl_follows_latest_write`] | a put without TTL clears an earlier TTL; a later TTL applies | ttl |
//! | [`cas_with_ttl`] | CAS with TTL expires; an expired key is absent for CAS | ttl |
//! | [`put_batch_round_trip`] | versions come back in entry order; a repeated key keeps the last write | — |
//! | [`put_batch_invalid_entry_writes_nothing`] | one bad entry (key, zero TTL, size) fails the batch; nothing written | — |
//! | [`scan_prefix_paging`] | 25 keys under a prefix, 5 beside it, pages of ≤ 7: exactly the 25 (ordered when declared) | — |
//! | [`scan_skips_expired`] | expired keys are not scanned | ttl |
//! | [`timers_fire_when_due`] | timers are claimed when due, earliest first, once per lease; settled ones are gone; cancel | a scheduler |
//! | [`timer_changed_after_claim_is_not_settled`] | a timer re-armed after its claim is neither removed nor moved by that claim | a scheduler |
//! | [`timer_moves_only_from_where_it_was`] | `move_if` renews a timer from its exact time; not a missing, claimed or re-armed one | a scheduler |
//! | [`timed_cas_writes_the_timer_with_the_state`] | a timed CAS arms, moves, clears the timer with the write; a conflict changes neither; delete removes it (without a scheduler: `Unsupported`) | — |
//! | [`concurrent_claims_single_winner`] | 8 concurrent claims of one due timer: one gets it | a scheduler |
//! | [`scheduler_rejects_bad_input`] | claim limit 0, zero lease, bad keys: `InvalidInput` | a scheduler |
//! | [`rejects_bad_input`] | empty/control/over-long key, zero TTL, oversized value, scan limit 0, bad prefix: typed errors naming the value | — |
//!
//! [`cas_concurrent_single_winner`] takes `&S` like the rest: on a
//! multi-threaded runtime it runs the 16 calls on 16 OS threads at once
//! (`block_in_place` + scoped threads), elsewhere concurrently on one task.

mod basic;
mod cas;
mod input;
mod scan;
mod timers;
mod ttl;

pub use basic::{
    delete_twice, empty_value_round_trip, get_missing_is_none, large_value_round_trip, put_batch_round_trip,
    put_get_round_trip, put_versions_increase, special_character_keys, version_grows_across_delete,
};
pub use cas::{
    cas_concurrent_single_winner, cas_create_if_absent, cas_current_version_succeeds,
    cas_stale_version_conflicts,
};
pub use input::{put_batch_invalid_entry_writes_nothing, rejects_bad_input};
pub use scan::scan_prefix_paging;
pub use timers::{
    concurrent_claims_single_winner, scheduler_rejects_bad_input, timed_cas_writes_the_timer_with_the_state,
    timer_changed_after_claim_is_not_settled, timer_moves_only_from_where_it_was, timers_fire_when_due,
};
pub use ttl::{cas_with_ttl, scan_skips_expired, ttl_expiry, ttl_follows_latest_write};

use super::Settings;
use super::util::{assert_bytes_eq, must};
use crate::store::{StateStore, Version, Versioned};

/// Whether the versions writes return are the stored ones; when not
/// (write-behind), the suite checks values only and skips version rules.
fn exact_versions<S: StateStore + ?Sized>(st: &S) -> bool {
    st.capabilities().exact_versions
}

/// Skips (visibly) a behaviour about versions on a store without exact ones.
fn skip_unless_exact<S: StateStore + ?Sized>(st: &S, test: &str) -> bool {
    let caps = st.capabilities();
    if !caps.exact_versions {
        crate::conformance::skip(
            test,
            caps.name,
            "exact_versions (write-behind returns Version::PENDING)",
        );
        return true;
    }
    false
}

/// Reads `key`, which must hold `value` (and `version`, when given).
async fn expect_value<S: StateStore + ?Sized>(
    st: &S,
    s: &Settings,
    key: &str,
    value: &[u8],
    version: Option<Version>,
) -> Versioned {
    let got = must(s, format_args!("get {key:?}"), st.get(key)).await;
    let got = got.unwrap_or_else(|| {
        panic!(
            "get {key:?} returned None, expected a value of {} bytes",
            value.len()
        )
    });
    assert_bytes_eq(&got.value, value, format_args!("value of {key:?}"));
    if let Some(version) = version.filter(|_| exact_versions(st)) {
        assert_ne!(
            version,
            Version::PENDING,
            "a store with exact versions returned Version::PENDING for {key:?}"
        );
        assert_eq!(
            got.version, version,
            "version of {key:?} differs from the one its write returned"
        );
    }
    got
}

/// Reads `key`, which must be missing.
async fn expect_missing<S: StateStore + ?Sized>(st: &S, s: &Settings, key: &str, why: &str) {
    if let Some(v) = must(s, format_args!("get {key:?}"), st.get(key)).await {
        panic!(
            "{key:?} should be missing ({why}), but holds {} bytes at {}",
            v.value.len(),
            v.version
        );
    }
}

/// Scans `prefix` to the end in pages of `limit`, checking each page's size
/// and that every key has the prefix. Returns every entry in page order.
async fn scan_all<S: StateStore + ?Sized>(
    st: &S,
    s: &Settings,
    prefix: &str,
    limit: usize,
    expected_max: usize,
) -> Vec<(String, Versioned)> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    // Generous: a page may be short (even empty) without being the last.
    for _ in 0..(expected_max + 10) * 4 {
        let page = must(
            s,
            format_args!("scan {prefix:?} (limit {limit})"),
            st.scan(prefix, cursor.as_deref(), limit),
        )
        .await;
        assert!(
            page.entries.len() <= limit,
            "scan page of {} entries exceeds limit {limit}",
            page.entries.len()
        );
        for (key, _) in &page.entries {
            assert!(
                key.starts_with(prefix),
                "scan {prefix:?} returned key {key:?} without the prefix"
            );
        }
        out.extend(page.entries);
        match page.cursor {
            None => return out,
            Some(c) => cursor = Some(c),
        }
    }
    panic!(
        "scan {prefix:?} (limit {limit}) did not finish: {} entries so far",
        out.len()
    );
}
