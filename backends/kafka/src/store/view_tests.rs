//! Tests of `view.rs`.
use super::super::record::version;
use super::*;

fn put(key: &str, v: u64, expires_ms: Option<u64>) -> Change {
    Change::Put {
        key: key.into(),
        value: Bytes::from(format!("{key}@{v}")),
        version: v,
        written: v,
        expires_ms,
        request: None,
        timer: None,
    }
}

fn claim(epoch: u64) -> Change {
    Change::Claim {
        epoch,
        member: format!("m{epoch}"),
    }
}

fn v(epoch: u64, seq: u64) -> u64 {
    version(epoch, seq).unwrap_or_default()
}

#[test]
fn writes_before_any_claim_are_refused() {
    let mut view = View::new(2);
    assert_eq!(view.apply(0, 0, put("k", v(0, 1), None)), Outcome::Refused);
    assert_eq!(view.apply(0, 1, put("k", v(1, 1), None)), Outcome::Refused);
    assert!(view.get("k", 0).is_none());
}

#[test]
fn a_fenced_writer_changes_nothing() {
    let mut view = View::new(1);
    assert_eq!(view.apply(0, 0, claim(1)), Outcome::Accepted);
    assert_eq!(view.apply(0, 1, put("k", v(1, 1), None)), Outcome::Accepted);
    // A new owner claims epoch 2; the old owner (epoch 1) writes on.
    assert_eq!(view.apply(0, 2, claim(2)), Outcome::Accepted);
    assert_eq!(view.apply(0, 3, put("k", v(1, 2), None)), Outcome::Refused);
    assert_eq!(
        view.apply(
            0,
            4,
            Change::Delete {
                key: "k".into(),
                version: v(1, 3),
                request: None
            }
        ),
        Outcome::Refused
    );
    assert_eq!(view.get("k", 0).map(|e| e.version), Some(v(1, 1)));
    assert_eq!(
        view.take_refused(0),
        vec!["k".to_string()],
        "for its owner to write again"
    );
    assert!(view.take_refused(0).is_empty());
    assert_eq!(view.apply(0, 5, put("k", v(2, 1), None)), Outcome::Accepted);
    // Which epoch each offset was written under.
    assert!(view.accepted_at(0, 1, 1));
    assert!(!view.accepted_at(0, 3, 1));
    assert!(view.accepted_at(0, 5, 2));
    // A claim that does not raise the epoch is refused, and its
    // claimant can tell.
    assert_eq!(view.apply(0, 6, claim(2)), Outcome::Refused);
    assert!(view.claim_accepted(0, 2));
    assert!(!view.claim_accepted(0, 6));
    assert_eq!(view.owner(0), (2, "m2"));
}

#[test]
fn applied_requests_are_remembered_until_a_minute_past_their_deadline() {
    let now = crate::store::now_ms();
    let mut view = View::new(1);
    view.apply(0, 0, claim(1));
    let forwarded = |id: &str, deadline_ms| Change::Delete {
        key: "k".into(),
        version: v(1, 1),
        request: Some(Applied {
            id: id.into(),
            deadline_ms,
            hit: true,
        }),
    };
    view.apply(0, 1, forwarded("m/1", now + 10_000));
    assert_eq!(
        view.answered(0, "m/1"),
        Some(Answer::Done {
            version: v(1, 1),
            hit: true,
            offset: 1
        })
    );
    assert_eq!(view.answered(0, "m/2"), None);
    // Long past its deadline: forgotten at the next record.
    view.apply(0, 2, forwarded("m/old", now - 2 * REMEMBER_PAST_DEADLINE));
    view.apply(0, 3, put("x", v(1, 3), None));
    assert_eq!(view.answered(0, "m/old"), None);
    assert!(view.answered(0, "m/1").is_some());
}

#[test]
fn partitions_are_fenced_independently() {
    let mut view = View::new(2);
    view.apply(0, 0, claim(1));
    view.apply(1, 0, claim(5));
    assert_eq!(view.apply(1, 1, put("a", v(5, 1), None)), Outcome::Accepted);
    assert_eq!(view.apply(0, 1, put("b", v(5, 1), None)), Outcome::Refused);
}

#[test]
fn expiry_hides_values_and_lists_them_for_their_owner() {
    let mut view = View::new(1);
    view.apply(0, 0, claim(1));
    view.apply(0, 1, put("a", v(1, 1), Some(100)));
    view.apply(0, 2, put("b", v(1, 2), Some(50)));
    view.apply(0, 3, put("c", v(1, 3), None));
    assert!(view.get("a", 99).is_some());
    assert!(view.get("a", 100).is_none());
    assert_eq!(
        view.expired(0, 100, 10),
        vec![("b".into(), v(1, 2)), ("a".into(), v(1, 1))]
    );
    // A later write without TTL takes the key off the expiry list.
    view.apply(0, 4, put("a", v(1, 4), None));
    assert_eq!(view.expired(0, 100, 10), vec![("b".into(), v(1, 2))]);
    view.apply(
        0,
        5,
        Change::Delete {
            key: "b".into(),
            version: v(1, 5),
            request: None,
        },
    );
    assert!(view.expired(0, 1000, 10).is_empty());
    let (page, more) = view.scan("", None, 10, 100);
    assert_eq!(
        page.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        vec!["a", "c"]
    );
    assert!(!more);
}

#[test]
fn scans_page_in_order_within_the_prefix() {
    let mut view = View::new(1);
    view.apply(0, 0, claim(1));
    for (i, k) in ["p/a", "p/b", "p/c", "q/a", "o/z"].iter().enumerate() {
        view.apply(0, i as i64 + 1, put(k, v(1, i as u64 + 1), None));
    }
    let (first, more) = view.scan("p/", None, 2, 0);
    assert_eq!(
        first.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        vec!["p/a", "p/b"]
    );
    assert!(more);
    let (rest, more) = view.scan("p/", Some("p/b"), 2, 0);
    assert_eq!(
        rest.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        vec!["p/c"]
    );
    assert!(!more);
}
