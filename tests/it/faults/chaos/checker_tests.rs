//! Tests of the history checker: each feeds it one kind of case.

use super::*;

fn entry(seq: u64, role: &str, step: &str, instance: &str, at_ms: u64) -> Entry {
    Entry {
        seq,
        role: role.into(),
        step: step.into(),
        attempt: 1,
        instance: instance.into(),
        at_ms,
    }
}

/// `do a, do b, do c` by `i1`, 10 ms apart from `t`.
fn completed(t: u64) -> Vec<Entry> {
    FORWARD
        .iter()
        .enumerate()
        .map(|(n, s)| entry(n as u64 + 1, "do", s, "i1", t + 10 * n as u64))
        .collect()
}

fn one(tx: &str, end: End, entries: Vec<Entry>) -> (HashMap<String, End>, HashMap<String, Vec<Entry>>) {
    (
        HashMap::from([(tx.to_string(), end)]),
        HashMap::from([(tx.to_string(), entries)]),
    )
}

fn none() -> HashSet<FailedAttempt> {
    HashSet::new()
}

fn kill(instance: &str, at: u64) -> Fault {
    Fault {
        what: "kill -9",
        target: Target::Instance(instance.into()),
        from_ms: at,
        to_ms: at,
    }
}

#[test]
fn ledger_values_parse_and_junk_does_not() {
    assert_eq!(
        Entry::parse(3, "undo b 2 i1 1700"),
        Some(Entry {
            seq: 3,
            role: "undo".into(),
            step: "b".into(),
            attempt: 2,
            instance: "i1".into(),
            at_ms: 1700
        })
    );
    for junk in ["", "do a", "do a x i1 5", "do a 1 i1 5 extra"] {
        assert_eq!(Entry::parse(1, junk), None, "{junk:?}");
    }
}

#[test]
fn a_clean_history_is_clean() {
    let (ends, ledger) = one("t1", End::Final(SagaStatus::Completed), completed(1000));
    let v = check(&ends, &ledger, &[], &none(), |_| false);
    assert!(v.clean(), "{}", v.summary());
    assert_eq!((v.completed, v.effects), (1, 3));
}

#[test]
fn lost_and_stuck_transactions_are_counted() {
    let ends = HashMap::from([
        ("gone".to_string(), End::Missing),
        ("slow".to_string(), End::Stuck(SagaStatus::Running)),
    ]);
    let v = check(&ends, &HashMap::new(), &[], &none(), |_| false);
    assert_eq!((v.lost.len(), v.stuck.len()), (1, 1));
    assert!(!v.clean());
}

#[test]
fn a_duplicate_with_no_fault_is_a_bug_and_one_after_a_kill_is_not() {
    let mut entries = completed(1000);
    entries.push(entry(4, "do", "b", "i2", 4000));
    let (ends, ledger) = one("t1", End::Final(SagaStatus::Completed), entries);
    let v = check(&ends, &ledger, &[], &none(), |_| false);
    assert_eq!(v.unexplained_duplicates.len(), 1, "{}", v.summary());
    // i1 applied `b` at 1010 and was killed at 2000: explained.
    let v = check(&ends, &ledger, &[kill("i1", 2000)], &none(), |_| false);
    assert!(v.clean(), "{}", v.summary());
    assert_eq!(v.explained_duplicates, 1);
    // A kill of another process, or one after both applications, does
    // not explain it.
    for fault in [kill("i3", 2000), kill("i1", 9000)] {
        let v = check(&ends, &ledger, &[fault], &none(), |_| false);
        assert_eq!(v.unexplained_duplicates.len(), 1, "{}", v.summary());
    }
    // A broker restart in between does, and so does one that ended less
    // than its aftermath before the first application; not one longer before.
    let broker = |from_ms, to_ms| Fault {
        what: "broker restart",
        target: Target::Broker,
        from_ms,
        to_ms,
    };
    assert!(check(&ends, &ledger, &[broker(3000, 3500)], &none(), |_| false).clean());
    for (t, explained) in [(1000, true), (10_000, false)] {
        // `b` applied twice, 5 ms apart, `t` ms after a restart that
        // ended at 100.
        let mut twice = completed(t);
        twice.push(entry(4, "do", "b", "i1", t + 15));
        let (ends, ledger) = one("t1", End::Final(SagaStatus::Completed), twice);
        let v = check(&ends, &ledger, &[broker(0, 100)], &none(), |_| false);
        assert_eq!(
            v.explained_duplicates,
            usize::from(explained),
            "{t}: {}",
            v.summary()
        );
        assert_eq!(v.clean(), explained, "{t}");
    }
    // i2 paused mid-call, applying `b` late after i1 took it over.
    let mut late = completed(1000);
    late.push(entry(4, "do", "b", "i2", 4000));
    let pause = Fault {
        what: "SIGSTOP",
        target: Target::Instance("i2".into()),
        from_ms: 500,
        to_ms: 3900,
    };
    let (ends, ledger) = one("t1", End::Final(SagaStatus::Completed), late);
    assert!(check(&ends, &ledger, &[pause], &none(), |_| false).clean());
}

/// Attempt 1 applied `a` and failed (its reply lost), attempt 2 applied
/// it again: a retry when the history says attempt 1 failed, a bug
/// when it does not.
#[test]
fn a_retry_after_a_recorded_failure_is_not_a_double_apply() {
    let mut entries = completed(1000);
    let mut again = entry(4, "do", "a", "i1", 1500);
    again.attempt = 2;
    entries.push(again);
    let (ends, ledger) = one("t1", End::Final(SagaStatus::Completed), entries);
    assert_eq!(repeated(&ledger), ["t1"]);
    let v = check(&ends, &ledger, &[], &none(), |_| false);
    assert_eq!(v.unexplained_duplicates.len(), 1);
    let failed = HashSet::from([("t1".to_string(), "do".to_string(), "a".to_string(), 1)]);
    let v = check(&ends, &ledger, &[], &failed, |_| false);
    assert!(v.clean(), "{}", v.summary());
    assert_eq!(v.retried_after_failure, 1);
}

#[test]
fn a_compensated_saga_needs_both_compensations_in_reverse_order() {
    let good = vec![
        entry(1, "do", "a", "i1", 1),
        entry(2, "do", "b", "i1", 2),
        entry(3, "undo", "b", "i1", 3),
        entry(4, "undo", "a", "i1", 4),
    ];
    let (ends, ledger) = one("t1", End::Final(SagaStatus::Compensated), good.clone());
    assert!(check(&ends, &ledger, &[], &none(), |_| true).clean());

    let mut reversed = good.clone();
    reversed[2].seq = 5;
    let (ends, ledger) = one("t1", End::Final(SagaStatus::Compensated), reversed);
    assert_eq!(
        check(&ends, &ledger, &[], &none(), |_| true).out_of_order.len(),
        1
    );

    // A step applied again after its compensation: wrong, even with a
    // fault to explain the repeat.
    let mut redone = good.clone();
    redone.push(entry(5, "do", "b", "i1", 5));
    let (ends, ledger) = one("t1", End::Final(SagaStatus::Compensated), redone);
    let v = check(&ends, &ledger, &[kill("i1", 3)], &none(), |_| true);
    assert_eq!(v.wrong.len(), 1, "{}", v.summary());

    let missing = good[..3].to_vec();
    let (ends, ledger) = one("t1", End::Final(SagaStatus::Compensated), missing);
    assert_eq!(check(&ends, &ledger, &[], &none(), |_| true).wrong.len(), 1);
}

#[test]
fn an_outcome_against_the_rule_or_the_effects_is_wrong() {
    // Completed, but the rule says it fails.
    let (ends, ledger) = one("t1", End::Final(SagaStatus::Completed), completed(1));
    assert_eq!(check(&ends, &ledger, &[], &none(), |_| true).wrong.len(), 1);
    // Completed and also compensated.
    let mut both = completed(1);
    both.push(entry(4, "undo", "a", "i1", 50));
    let (ends, ledger) = one("t1", End::Final(SagaStatus::Completed), both);
    assert_eq!(check(&ends, &ledger, &[], &none(), |_| false).wrong.len(), 1);
    // Forward steps out of order.
    let mut swapped = completed(1);
    swapped[0].seq = 9;
    let (ends, ledger) = one("t1", End::Final(SagaStatus::Completed), swapped);
    assert_eq!(
        check(&ends, &ledger, &[], &none(), |_| false).out_of_order.len(),
        1
    );
}
