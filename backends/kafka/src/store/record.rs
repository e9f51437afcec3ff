//! The changelog's records: what one record of `<prefix>.state` says, and
//! which partition a key lives in.
//!
//! | record | Kafka key | value | headers |
//! |---|---|---|---|
//! | a key's value | the key | the value | `ma-op: put`, `ma-ver`, `ma-rec`? (the record's version, when a timer change kept the value's), `ma-exp`?, `ma-tdue`?, `ma-tgen`?, request |
//! | a timer of a key without a value | the key | empty | `ma-op: timer`, `ma-ver`, `ma-tdue`, `ma-tgen`, request |
//! | a key deleted, with its timer (a tombstone) | the key | none | `ma-op: del`, `ma-ver`, request |
//!
//! "request": for a record a forwarded write made, `ma-rid` (`<member>/<rid>`),
//! `ma-rdl` (its deadline) and `ma-hit` ([`Applied`]).
//! | a claim: a new owner's epoch | `\0claim/<epoch>/<member>` | empty (kept: not a tombstone) | `ma-op: claim`, `ma-epoch`, `ma-member` |
//! | a barrier: "read up to here" | `\0barrier` | none (a tombstone) | `ma-op: barrier` |
//! | a forwarded request answered without a change | `\0req/<request id>` | none (a tombstone) | `ma-op: answered`, `ma-rec`, `ma-ver`, `ma-conflict`?, request |
//!
//! A version is `epoch << 40 | seq`: the epoch of the owner that wrote it
//! and that owner's count of writes to the partition. A later owner has a
//! greater epoch, so a key's versions grow across owners and deletes.
//! Each record of a key carries the key's whole state, its timer included
//! (`ma-tdue` when it fires, `ma-tgen` the version that last set it), so
//! the latest record of each key, all that compaction keeps, is enough.
//! Store keys never hold control characters ([`multiagents_core::validate::key`]),
//! so the `\0` keys of claims and barriers never meet a user's key.
//! Claims have one key each (compaction keeps every claim: the fencing
//! history a rebuild needs); barriers are tombstones compaction removes.

use bytes::Bytes;

/// Bits of a version below the epoch.
pub(crate) const SEQ_BITS: u32 = 40;

/// The epoch part of a version.
pub(crate) fn epoch_of(version: u64) -> u64 {
    version >> SEQ_BITS
}

/// The version of an owner's `seq`-th write in `epoch` (`None` past the
/// representable range: the owner must claim a new epoch).
pub(crate) fn version(epoch: u64, seq: u64) -> Option<u64> {
    (seq < (1 << SEQ_BITS) && epoch < (1 << (64 - SEQ_BITS))).then_some((epoch << SEQ_BITS) | seq)
}

/// The partition `key` lives in, of `partitions` (FNV-1a, so every client
/// of any language can compute it; changelog and requests agree on it).
pub(crate) fn partition_of(key: &str, partitions: i32) -> i32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let n = u64::try_from(partitions.max(1)).unwrap_or(1);
    i32::try_from(hash % n).unwrap_or(0)
}

/// Header names of changelog records.
pub(crate) mod header {
    pub(crate) const OP: &str = "ma-op";
    pub(crate) const VERSION: &str = "ma-ver";
    pub(crate) const WRITTEN: &str = "ma-rec";
    pub(crate) const EXPIRES: &str = "ma-exp";
    pub(crate) const REQUEST: &str = "ma-rid";
    pub(crate) const DEADLINE: &str = "ma-rdl";
    pub(crate) const HIT: &str = "ma-hit";
    pub(crate) const CONFLICT: &str = "ma-conflict";
    pub(crate) const EPOCH: &str = "ma-epoch";
    pub(crate) const MEMBER: &str = "ma-member";
    pub(crate) const TIMER_DUE: &str = "ma-tdue";
    pub(crate) const TIMER_GENERATION: &str = "ma-tgen";
}

/// The forwarded request a record applied: its asker-scoped id
/// (`<member>/<rid>`), its deadline, and what it answered (`hit`: the key
/// existed, or the timer operation applied). Every instance's view keeps
/// these until shortly after their deadline, so a request replayed after
/// its owner died is answered, not applied again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    pub(crate) id: String,
    pub(crate) deadline_ms: u64,
    pub(crate) hit: bool,
}

fn push_request(h: &mut Vec<(&'static str, String)>, request: Option<&Applied>) {
    if let Some(r) = request {
        h.push((header::REQUEST, r.id.clone()));
        h.push((header::DEADLINE, r.deadline_ms.to_string()));
        h.push((header::HIT, u8::from(r.hit).to_string()));
    }
}

/// A key's timer: when it fires, and the version of the record that last
/// set it (its generation: a claim is settled only if it is unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timer {
    pub(crate) due_ms: u64,
    pub(crate) generation: u64,
}

fn push_timer(h: &mut Vec<(&'static str, String)>, timer: Option<&Timer>) {
    if let Some(t) = timer {
        h.push((header::TIMER_DUE, t.due_ms.to_string()));
        h.push((header::TIMER_GENERATION, t.generation.to_string()));
    }
}

/// What one changelog record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// `key` holds `value` at `version`, until `expires_ms` if set.
    /// `written` is the record's own version (its epoch fences it): a
    /// change of the timer alone keeps the value's `version`.
    Put {
        key: String,
        value: Bytes,
        version: u64,
        written: u64,
        expires_ms: Option<u64>,
        request: Option<Applied>,
        timer: Option<Timer>,
    },
    /// `key` has no value, and this timer.
    Timer {
        key: String,
        version: u64,
        timer: Timer,
        request: Option<Applied>,
    },
    /// `key` is gone, with its timer; `version` is the delete's.
    Delete {
        key: String,
        version: u64,
        request: Option<Applied>,
    },
    /// `member` owns the partition from here on, with `epoch`.
    Claim { epoch: u64, member: String },
    /// Nothing changes: a reader that got here has read everything before.
    Barrier,
    /// A forwarded request answered without changing its key (a delete of
    /// nothing, a timer operation that did not apply, a compare-and-swap
    /// conflict): what it answered, so a replay is answered the same.
    /// `conflict`: `Some(actual)` for a conflict (`actual` `None`: absent).
    Answered {
        written: u64,
        request: Applied,
        version: u64,
        conflict: Option<Option<u64>>,
    },
}

impl Change {
    /// The version a data record was written with (its epoch fences it);
    /// `None` for claims and barriers.
    pub(crate) fn written(&self) -> Option<u64> {
        match self {
            Change::Put { written, .. } => Some(*written),
            Change::Timer { version, .. } | Change::Delete { version, .. } => Some(*version),
            Change::Answered { written, .. } => Some(*written),
            Change::Claim { .. } | Change::Barrier => None,
        }
    }

    /// The store key a data record changes.
    pub(crate) fn key(&self) -> Option<&str> {
        match self {
            Change::Put { key, .. } | Change::Timer { key, .. } | Change::Delete { key, .. } => Some(key),
            Change::Claim { .. } | Change::Barrier | Change::Answered { .. } => None,
        }
    }

    /// The Kafka key, value and headers of this change.
    pub(crate) fn encode(&self) -> (String, Option<Bytes>, Vec<(&'static str, String)>) {
        match self {
            Change::Put {
                key,
                value,
                version,
                written,
                expires_ms,
                request,
                timer,
            } => {
                let mut h = vec![
                    (header::OP, "put".to_string()),
                    (header::VERSION, version.to_string()),
                ];
                if written != version {
                    h.push((header::WRITTEN, written.to_string()));
                }
                if let Some(e) = expires_ms {
                    h.push((header::EXPIRES, e.to_string()));
                }
                push_request(&mut h, request.as_ref());
                push_timer(&mut h, timer.as_ref());
                (key.clone(), Some(value.clone()), h)
            }
            Change::Timer {
                key,
                version,
                timer,
                request,
            } => {
                let mut h = vec![
                    (header::OP, "timer".to_string()),
                    (header::VERSION, version.to_string()),
                ];
                push_timer(&mut h, Some(timer));
                push_request(&mut h, request.as_ref());
                // An empty value, not none: a record without one is a
                // tombstone, which compaction removes.
                (key.clone(), Some(Bytes::new()), h)
            }
            Change::Delete {
                key,
                version,
                request,
            } => {
                let mut h = vec![
                    (header::OP, "del".to_string()),
                    (header::VERSION, version.to_string()),
                ];
                push_request(&mut h, request.as_ref());
                (key.clone(), None, h)
            }
            Change::Claim { epoch, member } => (
                format!("\0claim/{epoch}/{member}"),
                Some(Bytes::new()),
                vec![
                    (header::OP, "claim".to_string()),
                    (header::EPOCH, epoch.to_string()),
                    (header::MEMBER, member.clone()),
                ],
            ),
            Change::Barrier => (
                "\0barrier".to_string(),
                None,
                vec![(header::OP, "barrier".to_string())],
            ),
            Change::Answered {
                written,
                request,
                version,
                conflict,
            } => {
                let mut h = vec![
                    (header::OP, "answered".to_string()),
                    (header::WRITTEN, written.to_string()),
                    (header::VERSION, version.to_string()),
                ];
                push_request(&mut h, Some(request));
                if let Some(actual) = conflict {
                    h.push((
                        header::CONFLICT,
                        actual.map_or_else(|| "absent".to_string(), |v| v.to_string()),
                    ));
                }
                // A tombstone: compaction removes it once the replay
                // window is long gone.
                (format!("\0req/{}", request.id), None, h)
            }
        }
    }

    /// Reads a record back; `Err` says why it is not one of ours.
    pub(crate) fn decode(
        key: &[u8],
        value: Option<&[u8]>,
        headers: &[(String, String)],
    ) -> Result<Change, String> {
        let get = |name: &str| crate::headers::find(headers, name);
        let number = |name: &str| -> Result<Option<u64>, String> {
            get(name)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| format!("header {name} = {v:?} is not a number"))
                })
                .transpose()
        };
        let required = |name: &str| number(name)?.ok_or_else(|| format!("no {name} header"));
        let key = || String::from_utf8(key.to_vec()).map_err(|_| "the key is not UTF-8".to_string());
        let timer = || -> Result<Option<Timer>, String> {
            Ok(
                match (number(header::TIMER_DUE)?, number(header::TIMER_GENERATION)?) {
                    (Some(due_ms), Some(generation)) => Some(Timer { due_ms, generation }),
                    _ => None,
                },
            )
        };
        let request = || -> Result<Option<Applied>, String> {
            Ok(match get(header::REQUEST) {
                None => None,
                Some(id) => Some(Applied {
                    id: id.to_string(),
                    deadline_ms: required(header::DEADLINE)?,
                    hit: get(header::HIT) == Some("1"),
                }),
            })
        };
        match get(header::OP) {
            Some("put") => Ok(Change::Put {
                key: key()?,
                value: Bytes::copy_from_slice(value.unwrap_or_default()),
                version: required(header::VERSION)?,
                written: match number(header::WRITTEN)? {
                    Some(w) => w,
                    None => required(header::VERSION)?,
                },
                expires_ms: number(header::EXPIRES)?,
                request: request()?,
                timer: timer()?,
            }),
            Some("timer") => Ok(Change::Timer {
                key: key()?,
                version: required(header::VERSION)?,
                timer: timer()?.ok_or("a timer record without ma-tdue and ma-tgen")?,
                request: request()?,
            }),
            Some("del") => Ok(Change::Delete {
                key: key()?,
                version: required(header::VERSION)?,
                request: request()?,
            }),
            Some("claim") => Ok(Change::Claim {
                epoch: required(header::EPOCH)?,
                member: get(header::MEMBER).unwrap_or_default().to_string(),
            }),
            Some("barrier") => Ok(Change::Barrier),
            Some("answered") => Ok(Change::Answered {
                written: required(header::WRITTEN)?,
                request: request()?.ok_or("an answered record without ma-rid")?,
                version: required(header::VERSION)?,
                conflict: match get(header::CONFLICT) {
                    None => None,
                    Some("absent") => Some(None),
                    Some(_) => Some(Some(required(header::CONFLICT)?)),
                },
            }),
            Some(other) => Err(format!("unknown op {other:?}")),
            None => Err("no ma-op header".to_string()),
        }
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
