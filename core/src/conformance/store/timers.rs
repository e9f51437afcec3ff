//! Timers kept with store keys (the [`Scheduler`](crate::scheduler::Scheduler)
//! contract): armed and cleared by timed compare-and-swap, claimed when
//! due with a lease, settled only by their claimer. Each behaviour keeps
//! its timers under a scope of its own, so it never claims another's.

use std::time::Duration;

use bytes::Bytes;

use crate::conformance::util::{must, must_fail};
use crate::conformance::{Settings, skip, unique};
use crate::error::ErrorKind;
use crate::scheduler::{Scheduler, Settle, TimerChange};
use crate::store::{Expected, StateStore};

const LEASE: Duration = Duration::from_secs(30);
/// Claims pass their own clock: far from now, so a real clock is never in
/// the way.
const T0: u64 = 1_000_000;

fn scheduler_of<S: StateStore + ?Sized>(st: &S, test: &str) -> Option<std::sync::Arc<dyn Scheduler>> {
    let sched = st.scheduler();
    if sched.is_none() {
        skip(test, st.capabilities().name, "a scheduler (timers)");
    }
    sched
}

fn keys_of(claimed: &[crate::scheduler::DueTimer]) -> Vec<&str> {
    claimed.iter().map(|t| t.key.as_str()).collect()
}

/// A timer is claimed once due, not before, earliest first; a claimed
/// timer fires again after its lease unless settled; a settled one is gone.
pub async fn timers_fire_when_due<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    let Some(sched) = scheduler_of(st, "timers_fire_when_due") else {
        return;
    };
    let scope = unique("timers");
    let (a, b) = (format!("{scope}/a"), format!("{scope}/b"));
    assert_eq!(
        must(s, "next_due without timers", sched.next_due(&scope)).await,
        None
    );
    must(s, "schedule b", sched.schedule(&b, T0 + 20)).await;
    must(s, "schedule a", sched.schedule(&a, T0 + 10)).await;
    assert_eq!(
        must(s, "next_due", sched.next_due(&scope)).await,
        Some(T0 + 10),
        "the earliest"
    );
    assert_eq!(
        must(s, "pending", sched.pending(&scope)).await,
        2,
        "two timers set"
    );
    let early = must(s, "claim before due", sched.claim_due(&scope, T0 + 9, 10, LEASE)).await;
    assert!(early.is_empty(), "nothing is due before T0+10: {early:?}");
    let first = must(s, "claim at T0+20", sched.claim_due(&scope, T0 + 20, 10, LEASE)).await;
    assert_eq!(
        keys_of(&first),
        [a.as_str(), b.as_str()],
        "both due, earliest first"
    );
    assert_eq!(first[0].due_ms, T0 + 10, "a claim reports when the timer was due");
    let again = must(
        s,
        "claim within the lease",
        sched.claim_due(&scope, T0 + 21, 10, LEASE),
    )
    .await;
    assert!(again.is_empty(), "claimed timers wait out their lease: {again:?}");
    let done = sched.settle(&a, first[0].claim, Settle::Done);
    assert!(must(s, "settle a", done).await, "an unchanged claim settles");
    let after = T0 + 21 + LEASE.as_millis() as u64;
    let refired = must(
        s,
        "claim after the lease",
        sched.claim_due(&scope, after, 10, LEASE),
    )
    .await;
    assert_eq!(
        keys_of(&refired),
        [b.as_str()],
        "an unsettled claim fires again; a settled one is gone"
    );
    assert_eq!(must(s, "pending", sched.pending(&scope)).await, 1);
    let limited = sched.claim_due(&scope, after + LEASE.as_millis() as u64 + 1, 1, LEASE);
    assert_eq!(must(s, "claim with limit 1", limited).await.len(), 1);
    assert!(must(s, "cancel b", sched.cancel(&b)).await, "cancel finds b");
    assert!(
        !must(s, "cancel b again", sched.cancel(&b)).await,
        "cancel twice: false"
    );
    assert_eq!(must(s, "pending", sched.pending(&scope)).await, 0);
}

/// A timer changed after its claim (a state write re-armed it) is not
/// settled by that claim: the new setting stands.
pub async fn timer_changed_after_claim_is_not_settled<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    let Some(sched) = scheduler_of(st, "timer_changed_after_claim_is_not_settled") else {
        return;
    };
    let scope = unique("timers");
    let key = format!("{scope}/k");
    must(s, "schedule", sched.schedule(&key, T0)).await;
    let claimed = must(s, "claim", sched.claim_due(&scope, T0, 10, LEASE)).await;
    assert_eq!(keys_of(&claimed), [key.as_str()]);
    must(s, "re-arm", sched.schedule(&key, T0 + 5)).await;
    let settled = sched.settle(&key, claimed[0].claim, Settle::Done);
    assert!(
        !must(s, "settle a stale claim", settled).await,
        "a stale claim must not settle"
    );
    let moved = sched.settle(&key, claimed[0].claim, Settle::At(T0 + 1_000_000));
    assert!(
        !must(s, "move by a stale claim", moved).await,
        "a stale claim must not move it"
    );
    let fired = must(
        s,
        "claim the re-armed timer",
        sched.claim_due(&scope, T0 + 5, 10, LEASE),
    )
    .await;
    assert_eq!(
        keys_of(&fired),
        [key.as_str()],
        "the re-armed timer fires at its new time"
    );
    let moved = sched.settle(&key, fired[0].claim, Settle::At(T0 + 100));
    assert!(must(s, "move by a current claim", moved).await);
    let none = must(
        s,
        "claim before the new time",
        sched.claim_due(&scope, T0 + 99, 10, LEASE),
    )
    .await;
    assert!(none.is_empty(), "moved to T0+100: {none:?}");
    let at = must(
        s,
        "claim at the new time",
        sched.claim_due(&scope, T0 + 100, 10, LEASE),
    )
    .await;
    assert_eq!(keys_of(&at), [key.as_str()]);
}

/// A timed CAS arms, moves and clears the key's timer with the write; a
/// CAS that conflicts changes neither; a plain CAS keeps it; a delete
/// removes it.
pub async fn timed_cas_writes_the_timer_with_the_state<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    let scope = unique("timers");
    let key = format!("{scope}/tx");
    let Some(sched) = st.scheduler() else {
        let armed = st.compare_and_swap_timed(
            &key,
            Expected::Absent,
            Bytes::from_static(b"v"),
            None,
            TimerChange::At(T0),
        );
        let e = must_fail(
            s,
            "timed CAS on a store without timers",
            ErrorKind::Unsupported,
            armed,
        )
        .await;
        assert!(
            e.message().contains("timers"),
            "the error should say timers are missing: {e}"
        );
        return skip(
            "timed_cas_writes_the_timer_with_the_state",
            st.capabilities().name,
            "a scheduler (timers)",
        );
    };
    let v1 = must(
        s,
        "create with a timer",
        st.compare_and_swap_timed(
            &key,
            Expected::Absent,
            Bytes::from_static(b"1"),
            None,
            TimerChange::At(T0 + 10),
        ),
    )
    .await;
    assert_eq!(
        must(s, "pending", sched.pending(&scope)).await,
        1,
        "the create armed a timer"
    );
    let lost = st.compare_and_swap_timed(
        &key,
        Expected::Absent,
        Bytes::from_static(b"x"),
        None,
        TimerChange::At(T0),
    );
    must_fail(s, "a conflicting timed CAS", ErrorKind::Conflict, lost).await;
    let none = must(
        s,
        "claim before T0+10",
        sched.claim_due(&scope, T0 + 9, 10, LEASE),
    )
    .await;
    assert!(
        none.is_empty(),
        "a conflicting CAS must not move the timer: {none:?}"
    );
    let v2 = must(
        s,
        "move the timer",
        st.compare_and_swap_timed(
            &key,
            Expected::Version(v1),
            Bytes::from_static(b"2"),
            None,
            TimerChange::At(T0 + 50),
        ),
    )
    .await;
    let v3 = must(
        s,
        "plain CAS",
        st.compare_and_swap(&key, Expected::Version(v2), Bytes::from_static(b"3"), None),
    )
    .await;
    let none = must(
        s,
        "claim before T0+50",
        sched.claim_due(&scope, T0 + 49, 10, LEASE),
    )
    .await;
    assert!(none.is_empty(), "the timer moved to T0+50: {none:?}");
    let due = must(s, "claim at T0+50", sched.claim_due(&scope, T0 + 50, 10, LEASE)).await;
    assert_eq!(keys_of(&due), [key.as_str()], "a plain CAS keeps the timer");
    // A write re-arming the timer wins over the claim taken before it.
    let v4 = must(
        s,
        "re-arm after a claim",
        st.compare_and_swap_timed(
            &key,
            Expected::Version(v3),
            Bytes::from_static(b"4"),
            None,
            TimerChange::At(T0 + 60),
        ),
    )
    .await;
    assert!(
        !must(
            s,
            "settle the older claim",
            sched.settle(&key, due[0].claim, Settle::Done)
        )
        .await
    );
    must(
        s,
        "clear the timer",
        st.compare_and_swap_timed(
            &key,
            Expected::Version(v4),
            Bytes::from_static(b"5"),
            None,
            TimerChange::Clear,
        ),
    )
    .await;
    assert_eq!(must(s, "pending after clear", sched.pending(&scope)).await, 0);
    must(s, "arm again", sched.schedule(&key, T0)).await;
    must(s, "delete", st.delete(&key)).await;
    assert_eq!(
        must(s, "pending after delete", sched.pending(&scope)).await,
        0,
        "a delete removes the key's timer"
    );
}

/// `move_if` renews a timer still where its mover left it, and never one
/// that was claimed, re-armed or removed since.
pub async fn timer_moves_only_from_where_it_was<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    let Some(sched) = scheduler_of(st, "timer_moves_only_from_where_it_was") else {
        return;
    };
    let scope = unique("timers");
    let key = format!("{scope}/k");
    assert!(
        !must(s, "move a missing timer", sched.move_if(&key, T0, T0 + 1)).await,
        "no timer: no move"
    );
    must(s, "schedule", sched.schedule(&key, T0 + 10)).await;
    assert!(!must(s, "move from the wrong time", sched.move_if(&key, T0, T0 + 20)).await);
    assert!(
        must(s, "renew", sched.move_if(&key, T0 + 10, T0 + 20)).await,
        "renews from where it is"
    );
    let none = must(
        s,
        "claim before the renewed time",
        sched.claim_due(&scope, T0 + 19, 10, LEASE),
    )
    .await;
    assert!(none.is_empty(), "renewed to T0+20: {none:?}");
    let due = must(
        s,
        "claim at the renewed time",
        sched.claim_due(&scope, T0 + 20, 10, LEASE),
    )
    .await;
    assert_eq!(keys_of(&due), [key.as_str()]);
    assert!(
        !must(s, "renew a claimed timer", sched.move_if(&key, T0 + 20, T0 + 30)).await,
        "a claim wins over a renewal"
    );
}

/// Of concurrent claimers of one due timer, exactly one gets it.
pub async fn concurrent_claims_single_winner<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    let Some(sched) = scheduler_of(st, "concurrent_claims_single_winner") else {
        return;
    };
    let scope = unique("timers");
    let key = format!("{scope}/k");
    must(s, "schedule", sched.schedule(&key, T0)).await;
    let claims = (0..8).map(|_| sched.claim_due(&scope, T0, 10, LEASE));
    let mut won = 0;
    for claimed in futures_util::future::join_all(claims).await {
        won += claimed.unwrap_or_else(|e| panic!("claim failed: {e}")).len();
    }
    assert_eq!(won, 1, "8 concurrent claims of one firing: exactly one gets it");
}

/// Bad claims and keys are typed errors.
pub async fn scheduler_rejects_bad_input<S: StateStore + ?Sized>(st: &S, s: &Settings) {
    let Some(sched) = scheduler_of(st, "scheduler_rejects_bad_input") else {
        return;
    };
    let scope = unique("timers");
    must_fail(
        s,
        "claim with limit 0",
        ErrorKind::InvalidInput,
        sched.claim_due(&scope, T0, 0, LEASE),
    )
    .await;
    must_fail(
        s,
        "claim with a zero lease",
        ErrorKind::InvalidInput,
        sched.claim_due(&scope, T0, 1, Duration::ZERO),
    )
    .await;
    must_fail(
        s,
        "schedule an empty key",
        ErrorKind::InvalidInput,
        sched.schedule("", T0),
    )
    .await;
    must_fail(
        s,
        "cancel a key with a control character",
        ErrorKind::InvalidInput,
        sched.cancel("a\u{1}b"),
    )
    .await;
}
