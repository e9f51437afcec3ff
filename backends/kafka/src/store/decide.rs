//! What a write does to a key, decided by the partition's only writer:
//! the rules of put, compare-and-swap, delete and the timer operations,
//! on a key's state as the writer sees it (pure: no I/O).

use std::time::Duration;

use bytes::Bytes;
use multiagents_core::scheduler::{DueTimer, Settle, TimerChange, millis};
use multiagents_core::store::conflict;
use multiagents_core::{Expected, Result, Version};

use super::record::{Applied, Change, Timer};
use super::view::Entry;

/// A write asked of a partition's owner.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    Put {
        key: String,
        value: Bytes,
        ttl: Option<Duration>,
    },
    Cas {
        key: String,
        expected: Expected,
        value: Bytes,
        ttl: Option<Duration>,
        timer: TimerChange,
    },
    Delete {
        key: String,
    },
    Timer {
        key: String,
        op: TimerOp,
    },
}

/// A change of one key's timer on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerOp {
    Schedule(u64),
    Cancel,
    Settle { claim: u64, how: Settle },
    MoveIf { from_ms: u64, to_ms: u64 },
}

impl Write {
    pub(crate) fn key(&self) -> &str {
        match self {
            Write::Put { key, .. }
            | Write::Cas { key, .. }
            | Write::Delete { key }
            | Write::Timer { key, .. } => key,
        }
    }
}

/// What a write did: the new version, whether it hit (a delete: the key
/// existed; a timer operation: it applied), the changelog offset that
/// holds it (-1: nothing written), and the timers a claim took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Done {
    pub(crate) version: Version,
    pub(crate) existed: bool,
    pub(crate) offset: i64,
    pub(crate) timers: Vec<DueTimer>,
}

impl Done {
    pub(crate) fn answered(existed: bool, version: Version) -> Done {
        Done {
            version,
            existed,
            offset: -1,
            timers: Vec::new(),
        }
    }
}

/// A key as the writer sees it: its value (expired or not) and timer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyState {
    pub(crate) entry: Option<Entry>,
    pub(crate) timer: Option<Timer>,
}

impl KeyState {
    fn live(&self, now_ms: u64) -> Option<&Entry> {
        self.entry.as_ref().filter(|e| e.live(now_ms))
    }

    /// The record that makes `key` this state at `version` (`None`: the
    /// key had nothing and keeps nothing).
    pub(crate) fn change(
        &self,
        key: &str,
        version: u64,
        request: Option<Applied>,
        before: &KeyState,
    ) -> Option<Change> {
        match (&self.entry, self.timer) {
            (Some(e), timer) => Some(Change::Put {
                key: key.to_string(),
                value: e.value.clone(),
                version: e.version,
                written: version,
                expires_ms: e.expires_ms,
                request,
                timer,
            }),
            (None, Some(timer)) => Some(Change::Timer {
                key: key.to_string(),
                version,
                timer,
                request,
            }),
            (None, None) if before.entry.is_some() || before.timer.is_some() => Some(Change::Delete {
                key: key.to_string(),
                version,
                request,
            }),
            (None, None) => None,
        }
    }
}

/// What to do for one write.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Answer this without writing (a no-op).
    Answer(Done),
    /// Write the key's new state; answer with `existed` once accepted.
    Write { state: KeyState, existed: bool },
}

/// Decides `write` on `state`; `version` is what a record would carry.
///
/// # Errors
/// A compare-and-swap that does not find what it expects: `Conflict`.
pub(crate) fn decide(write: &Write, state: &KeyState, now_ms: u64, version: u64) -> Result<Decision> {
    let live = state.live(now_ms);
    let entry = |value: &Bytes, ttl: &Option<Duration>| Entry {
        value: value.clone(),
        version,
        expires_ms: ttl.map(|t| now_ms.saturating_add(millis(t).max(1))),
    };
    let timer_at = |due_ms| {
        Some(Timer {
            due_ms,
            generation: version,
        })
    };
    let write_with = |entry: Option<Entry>, timer: Option<Timer>, existed: bool| Decision::Write {
        state: KeyState { entry, timer },
        existed,
    };
    Ok(match write {
        Write::Put { value, ttl, .. } => write_with(Some(entry(value, ttl)), state.timer, live.is_some()),
        Write::Cas {
            key,
            expected,
            value,
            ttl,
            timer,
        } => {
            let actual = live.map(|e| Version(e.version));
            let ok = match expected {
                Expected::Absent => actual.is_none(),
                Expected::Version(v) => actual == Some(*v),
            };
            if !ok {
                return Err(conflict(key, *expected, actual));
            }
            let timer = match timer {
                TimerChange::Keep => state.timer,
                TimerChange::At(due) => timer_at(*due),
                TimerChange::Clear => None,
            };
            write_with(Some(entry(value, ttl)), timer, true)
        }
        Write::Delete { .. } => {
            if state.entry.is_none() && state.timer.is_none() {
                Decision::Answer(Done::answered(false, Version::PENDING))
            } else {
                write_with(None, None, live.is_some())
            }
        }
        Write::Timer { op, .. } => {
            let keep = state.entry.clone();
            match (*op, state.timer) {
                (TimerOp::Schedule(due), _) => write_with(keep, timer_at(due), true),
                (TimerOp::Cancel, Some(_)) => write_with(keep, None, true),
                (TimerOp::Settle { claim, how }, Some(t)) if t.generation == claim => match how {
                    Settle::Done => write_with(keep, None, true),
                    Settle::At(due) => write_with(keep, timer_at(due), true),
                },
                (TimerOp::MoveIf { from_ms, to_ms }, Some(t)) if t.due_ms == from_ms => {
                    write_with(keep, timer_at(to_ms), true)
                }
                _ => Decision::Answer(Done::answered(false, Version::PENDING)),
            }
        }
    })
}

/// The state a claim leaves: the timer moved to `now + lease`, set by
/// `version` (the claim's id).
pub(crate) fn claimed(state: &KeyState, now_ms: u64, lease: Duration, version: u64) -> KeyState {
    KeyState {
        entry: state.entry.clone(),
        timer: Some(Timer {
            due_ms: now_ms.saturating_add(millis(lease)),
            generation: version,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multiagents_core::ErrorKind;

    fn with_value(version: u64, timer: Option<Timer>) -> KeyState {
        KeyState {
            entry: Some(Entry {
                value: Bytes::from_static(b"v"),
                version,
                expires_ms: None,
            }),
            timer,
        }
    }

    fn cas(expected: Expected, timer: TimerChange) -> Write {
        Write::Cas {
            key: "k".into(),
            expected,
            value: Bytes::from_static(b"w"),
            ttl: None,
            timer,
        }
    }

    #[test]
    fn cas_decides_on_the_live_version_and_writes_the_timer_with_the_value() {
        let state = with_value(
            5,
            Some(Timer {
                due_ms: 10,
                generation: 5,
            }),
        );
        let err = decide(
            &cas(Expected::Version(Version(4)), TimerChange::Keep),
            &state,
            0,
            6,
        )
        .expect_err("stale");
        assert_eq!(err.kind(), ErrorKind::Conflict);
        let Ok(Decision::Write { state: next, .. }) = decide(
            &cas(Expected::Version(Version(5)), TimerChange::At(99)),
            &state,
            0,
            6,
        ) else {
            panic!("a write");
        };
        assert_eq!(
            next.timer,
            Some(Timer {
                due_ms: 99,
                generation: 6
            })
        );
        assert_eq!(next.entry.map(|e| e.version), Some(6));
        let Ok(Decision::Write { state: kept, .. }) = decide(
            &cas(Expected::Version(Version(5)), TimerChange::Keep),
            &state,
            0,
            6,
        ) else {
            panic!("a write");
        };
        assert_eq!(kept.timer, state.timer, "Keep keeps the generation too");
        // An expired value is absent for a CAS.
        let mut expired = with_value(5, None);
        if let Some(e) = expired.entry.as_mut() {
            e.expires_ms = Some(1);
        }
        assert!(decide(&cas(Expected::Absent, TimerChange::Keep), &expired, 1, 6).is_ok());
    }

    #[test]
    fn timer_operations_apply_only_to_the_timer_they_expect() {
        let state = with_value(
            5,
            Some(Timer {
                due_ms: 10,
                generation: 5,
            }),
        );
        let op = |op| Write::Timer { key: "k".into(), op };
        let hit = |d: Result<Decision>| matches!(d, Ok(Decision::Write { existed: true, .. }));
        assert!(hit(decide(
            &op(TimerOp::Settle {
                claim: 5,
                how: Settle::Done
            }),
            &state,
            0,
            6
        )));
        assert!(!hit(decide(
            &op(TimerOp::Settle {
                claim: 4,
                how: Settle::Done
            }),
            &state,
            0,
            6
        )));
        assert!(hit(decide(
            &op(TimerOp::MoveIf {
                from_ms: 10,
                to_ms: 20
            }),
            &state,
            0,
            6
        )));
        assert!(!hit(decide(
            &op(TimerOp::MoveIf {
                from_ms: 11,
                to_ms: 20
            }),
            &state,
            0,
            6
        )));
        assert!(!hit(decide(&op(TimerOp::Cancel), &with_value(5, None), 0, 6)));
        // A timer on a key without a value is a record of its own.
        let Ok(Decision::Write { state: only, .. }) =
            decide(&op(TimerOp::Schedule(3)), &KeyState::default(), 0, 6)
        else {
            panic!("a write");
        };
        assert!(matches!(
            only.change("k", 6, None, &KeyState::default()),
            Some(Change::Timer { .. })
        ));
        // Nothing to delete: answered, nothing written.
        let none = decide(&Write::Delete { key: "k".into() }, &KeyState::default(), 0, 6).expect("delete");
        assert!(matches!(none, Decision::Answer(Done { existed: false, .. })));
    }
}
