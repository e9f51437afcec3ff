//! Tests of `record.rs`.
use super::*;

fn round_trip(c: Change) {
    let (key, value, headers) = c.encode();
    let headers: Vec<(String, String)> = headers.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    assert_eq!(Change::decode(key.as_bytes(), value.as_deref(), &headers), Ok(c));
}

#[test]
fn every_change_round_trips() {
    round_trip(Change::Put {
        key: "tx/1".into(),
        value: Bytes::from_static(b"\x00\xff"),
        version: version(3, 7).unwrap_or_default(),
        written: version(4, 1).unwrap_or_default(),
        expires_ms: Some(99),
        request: Some(Applied {
            id: "m/5".into(),
            deadline_ms: 9,
            hit: true,
        }),
        timer: Some(Timer {
            due_ms: 7,
            generation: 3,
        }),
    });
    round_trip(Change::Timer {
        key: "k".into(),
        version: 4,
        timer: Timer {
            due_ms: 1,
            generation: 4,
        },
        request: None,
    });
    round_trip(Change::Put {
        key: "k".into(),
        value: Bytes::new(),
        version: 1,
        written: 1,
        expires_ms: None,
        request: None,
        timer: None,
    });
    round_trip(Change::Delete {
        key: "k".into(),
        version: 9,
        request: Some(Applied {
            id: "m/1".into(),
            deadline_ms: 9,
            hit: false,
        }),
    });
    round_trip(Change::Claim {
        epoch: 4,
        member: "m-1".into(),
    });
    round_trip(Change::Barrier);
    for conflict in [None, Some(None), Some(Some(7))] {
        round_trip(Change::Answered {
            written: 9,
            request: Applied {
                id: "m/3".into(),
                deadline_ms: 5,
                hit: false,
            },
            version: 0,
            conflict,
        });
    }
}

#[test]
fn foreign_records_are_refused_with_a_reason() {
    assert!(Change::decode(b"k", Some(b"v"), &[]).is_err());
    let bad = vec![
        ("ma-op".to_string(), "put".to_string()),
        ("ma-ver".to_string(), "x".to_string()),
    ];
    let why = Change::decode(b"k", Some(b"v"), &bad).expect_err("a bad version");
    assert!(why.contains("ma-ver"), "{why}");
}

#[test]
fn versions_order_by_epoch_then_seq() {
    let (a, b) = (version(1, (1 << SEQ_BITS) - 1), version(2, 1));
    assert!(a < b);
    assert_eq!(epoch_of(b.unwrap_or_default()), 2);
    assert_eq!(version(1, 1 << SEQ_BITS), None);
}

#[test]
fn partitions_are_stable_and_in_range() {
    assert_eq!(partition_of("tx/1", 8), partition_of("tx/1", 8));
    assert!((0..8).contains(&partition_of("anything", 8)));
    assert_eq!(partition_of("k", 1), 0);
    let spread: std::collections::HashSet<_> = (0..64).map(|i| partition_of(&format!("tx/{i}"), 8)).collect();
    assert_eq!(spread.len(), 8);
}
