//! Forwarded writes on the wire: a write for a partition this instance
//! does not own goes to `<prefix>.state.req` (the same partition as the
//! key's changelog partition), where its owner reads it; the answer comes
//! back on `<prefix>.state.rep`, in the partition the asker reads.
//!
//! | record | Kafka key | value | headers |
//! |---|---|---|---|
//! | request | the store key | the value (put, cas) | `ma-op` (`put`, `cas`, `del`, `timer`), `ma-rid`, `ma-expect` (`absent` or a version), `ma-ttl` (ms), `ma-timer` (a cas's timer: `clear` or when; a timer operation: `schedule`, `cancel`, `done`, `again`, `move`, with `ma-a`, `ma-b`), `ma-to`, `ma-rp`, `ma-deadline` (ms since the epoch) |
//! | reply | the asker's member id | none | `ma-rid`, `ma-to`, `ma-status` (`ok` or an error kind), `ma-ver`, `ma-existed`, `ma-off`, `ma-actual`, `ma-msg` |
//!
//! A request read after its deadline is dropped unanswered: its asker has
//! already given up (so a late `put` never overwrites a newer value).

use std::time::Duration;

use bytes::Bytes;
use multiagents_core::store::conflict;
use multiagents_core::{Error, ErrorKind, Expected, Result, Version};

use multiagents_core::scheduler::{Settle, TimerChange};

use super::decide::{Done, TimerOp, Write};

mod h {
    pub(super) const OP: &str = "ma-op";
    pub(super) const RID: &str = "ma-rid";
    pub(super) const EXPECT: &str = "ma-expect";
    pub(super) const TTL: &str = "ma-ttl";
    pub(super) const TO: &str = "ma-to";
    pub(super) const REPLY_PARTITION: &str = "ma-rp";
    pub(super) const DEADLINE: &str = "ma-deadline";
    pub(super) const TIMER: &str = "ma-timer";
    pub(super) const A: &str = "ma-a";
    pub(super) const B: &str = "ma-b";
    pub(super) const STATUS: &str = "ma-status";
    pub(super) const VERSION: &str = "ma-ver";
    pub(super) const EXISTED: &str = "ma-existed";
    pub(super) const OFFSET: &str = "ma-off";
    pub(super) const ACTUAL: &str = "ma-actual";
    pub(super) const MESSAGE: &str = "ma-msg";
    pub(super) const OUTCOME: &str = "ma-outcome";
}

type Headers = Vec<(&'static str, String)>;

/// A forwarded write as read by the owner.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) write: Write,
    pub(crate) rid: u64,
    pub(crate) to: String,
    pub(crate) reply_partition: i32,
    pub(crate) deadline_ms: u64,
}

impl Request {
    /// The Kafka key, value and headers.
    pub(crate) fn encode(&self) -> (String, Option<Bytes>, Headers) {
        let mut headers: Headers = vec![
            (h::RID, self.rid.to_string()),
            (h::TO, self.to.clone()),
            (h::REPLY_PARTITION, self.reply_partition.to_string()),
            (h::DEADLINE, self.deadline_ms.to_string()),
        ];
        let ttl = |headers: &mut Headers, ttl: &Option<Duration>| {
            if let Some(t) = ttl {
                headers.push((h::TTL, multiagents_core::scheduler::millis(*t).max(1).to_string()));
            }
        };
        let (key, value) = match &self.write {
            Write::Put { key, value, ttl: t } => {
                headers.push((h::OP, "put".into()));
                ttl(&mut headers, t);
                (key, Some(value.clone()))
            }
            Write::Cas {
                key,
                expected,
                value,
                ttl: t,
                timer,
            } => {
                headers.push((h::OP, "cas".into()));
                headers.push((h::EXPECT, expect_text(*expected)));
                ttl(&mut headers, t);
                match timer {
                    TimerChange::Keep => {}
                    TimerChange::Clear => headers.push((h::TIMER, "clear".into())),
                    TimerChange::At(due) => headers.push((h::TIMER, due.to_string())),
                }
                (key, Some(value.clone()))
            }
            Write::Delete { key } => {
                headers.push((h::OP, "del".into()));
                (key, None)
            }
            Write::Timer { key, op } => {
                headers.push((h::OP, "timer".into()));
                let (kind, a, b) = match *op {
                    TimerOp::Schedule(due) => ("schedule", due, 0),
                    TimerOp::Cancel => ("cancel", 0, 0),
                    TimerOp::Settle {
                        claim,
                        how: Settle::Done,
                    } => ("done", claim, 0),
                    TimerOp::Settle {
                        claim,
                        how: Settle::At(due),
                    } => ("again", claim, due),
                    TimerOp::MoveIf { from_ms, to_ms } => ("move", from_ms, to_ms),
                };
                headers.push((h::TIMER, kind.into()));
                headers.push((h::A, a.to_string()));
                headers.push((h::B, b.to_string()));
                (key, None)
            }
        };
        (key.clone(), value, headers)
    }

    /// Reads a request back; `Err` says why it is not one.
    pub(crate) fn decode(
        key: &[u8],
        value: Option<&[u8]>,
        headers: &[(String, String)],
    ) -> std::result::Result<Request, String> {
        let get = |name: &str| crate::headers::find(headers, name);
        let number = |name: &str| -> std::result::Result<u64, String> {
            let v = get(name).ok_or_else(|| format!("no {name} header"))?;
            v.parse()
                .map_err(|_| format!("header {name} = {v:?} is not a number"))
        };
        let key = String::from_utf8(key.to_vec()).map_err(|_| "the key is not UTF-8".to_string())?;
        let value = Bytes::copy_from_slice(value.unwrap_or_default());
        let ttl = get(h::TTL)
            .map(|t| {
                t.parse()
                    .map(Duration::from_millis)
                    .map_err(|_| format!("ma-ttl = {t:?} is not a number"))
            })
            .transpose()?;
        let write = match get(h::OP) {
            Some("put") => Write::Put { key, value, ttl },
            Some("cas") => Write::Cas {
                key,
                expected: parse_expect(get(h::EXPECT).unwrap_or_default())?,
                value,
                ttl,
                timer: match get(h::TIMER) {
                    None => TimerChange::Keep,
                    Some("clear") => TimerChange::Clear,
                    Some(_) => TimerChange::At(number(h::TIMER)?),
                },
            },
            Some("del") => Write::Delete { key },
            Some("timer") => {
                let (a, b) = (number(h::A)?, number(h::B)?);
                let op = match get(h::TIMER) {
                    Some("schedule") => TimerOp::Schedule(a),
                    Some("cancel") => TimerOp::Cancel,
                    Some("done") => TimerOp::Settle {
                        claim: a,
                        how: Settle::Done,
                    },
                    Some("again") => TimerOp::Settle {
                        claim: a,
                        how: Settle::At(b),
                    },
                    Some("move") => TimerOp::MoveIf { from_ms: a, to_ms: b },
                    other => return Err(format!("unknown timer operation {other:?}")),
                };
                Write::Timer { key, op }
            }
            other => return Err(format!("unknown op {other:?}")),
        };
        Ok(Request {
            write,
            rid: number(h::RID)?,
            to: get(h::TO).unwrap_or_default().to_string(),
            reply_partition: i32::try_from(number(h::REPLY_PARTITION)?).map_err(|e| e.to_string())?,
            deadline_ms: number(h::DEADLINE)?,
        })
    }

    /// The reply record's key and headers for `result`.
    pub(crate) fn reply(&self, result: &Result<Done>) -> (String, Headers) {
        let mut headers: Headers = vec![(h::RID, self.rid.to_string()), (h::TO, self.to.clone())];
        match result {
            Ok(done) => {
                headers.push((h::STATUS, "ok".into()));
                headers.push((h::VERSION, done.version.0.to_string()));
                headers.push((h::EXISTED, u8::from(done.existed).to_string()));
                headers.push((h::OFFSET, done.offset.to_string()));
            }
            Err(e) => {
                headers.push((h::STATUS, e.kind().as_str().into()));
                headers.push((h::MESSAGE, e.message().to_string()));
                if let Some(actual) = e.context_value("actual") {
                    headers.push((h::ACTUAL, actual.to_string()));
                }
                if let Some(outcome) = e.context_value("outcome") {
                    headers.push((h::OUTCOME, outcome.to_string()));
                }
            }
        }
        (self.to.clone(), headers)
    }
}

fn expect_text(expected: Expected) -> String {
    match expected {
        Expected::Absent => "absent".into(),
        Expected::Version(v) => v.0.to_string(),
    }
}

fn parse_expect(text: &str) -> std::result::Result<Expected, String> {
    if text == "absent" {
        return Ok(Expected::Absent);
    }
    text.parse()
        .map(|v| Expected::Version(Version(v)))
        .map_err(|_| format!("ma-expect = {text:?} is neither absent nor a version"))
}

/// A reply as read by the asker: its request id and member, and what the
/// owner answered for `write`.
pub(crate) struct Reply {
    pub(crate) rid: u64,
    pub(crate) to: String,
    status: String,
    version: u64,
    existed: bool,
    offset: i64,
    actual: Option<String>,
    outcome: Option<String>,
    message: String,
}

impl Reply {
    pub(crate) fn decode(headers: &[(String, String)]) -> Option<Reply> {
        let get = |name: &str| crate::headers::find(headers, name);
        Some(Reply {
            rid: get(h::RID)?.parse().ok()?,
            to: get(h::TO)?.to_string(),
            status: get(h::STATUS)?.to_string(),
            version: get(h::VERSION).and_then(|v| v.parse().ok()).unwrap_or(0),
            existed: get(h::EXISTED) == Some("1"),
            offset: get(h::OFFSET).and_then(|v| v.parse().ok()).unwrap_or(-1),
            actual: get(h::ACTUAL).map(str::to_string),
            outcome: get(h::OUTCOME).map(str::to_string),
            message: get(h::MESSAGE).unwrap_or_default().to_string(),
        })
    }

    /// The result the owner answered for `write`.
    pub(crate) fn result(self, write: &Write) -> Result<Done> {
        if self.status == "ok" {
            let mut done = Done::answered(self.existed, Version(self.version));
            done.offset = self.offset;
            return Ok(done);
        }
        if self.status == "conflict"
            && let Write::Cas { key, expected, .. } = write
        {
            let actual = self
                .actual
                .as_deref()
                .and_then(|a| a.strip_prefix('v'))
                .and_then(|v| v.parse().ok())
                .map(Version);
            return Err(conflict(key, *expected, actual));
        }
        let kind = KINDS
            .iter()
            .copied()
            .find(|k| k.as_str() == self.status)
            .unwrap_or(ErrorKind::Unexpected);
        let e = Error::new(
            kind,
            format!("kafka store (the partition's owner): {}", self.message),
        )
        .with_operation("kafka.store.forward")
        .with_context("key", write.key());
        Err(match self.outcome {
            Some(outcome) => e.with_context("outcome", outcome),
            None => e,
        })
    }
}

const KINDS: [ErrorKind; 8] = [
    ErrorKind::InvalidInput,
    ErrorKind::TooLarge,
    ErrorKind::Conflict,
    ErrorKind::Closed,
    ErrorKind::Unavailable,
    ErrorKind::Timeout,
    ErrorKind::Overloaded,
    ErrorKind::Unexpected,
];

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(headers: Headers) -> Vec<(String, String)> {
        headers.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    #[test]
    fn requests_round_trip() {
        let r = Request {
            write: Write::Cas {
                key: "tx/1".into(),
                expected: Expected::Version(Version(7)),
                value: Bytes::from_static(b"v"),
                ttl: Some(Duration::from_millis(300)),
                timer: TimerChange::At(5),
            },
            rid: 42,
            to: "m-1".into(),
            reply_partition: 3,
            deadline_ms: 1_000,
        };
        let (key, value, headers) = r.encode();
        let back = Request::decode(key.as_bytes(), value.as_deref(), &strings(headers)).expect("decodes");
        assert_eq!(
            (back.rid, back.to.as_str(), back.reply_partition, back.deadline_ms),
            (42, "m-1", 3, 1_000)
        );
        assert!(
            matches!(back.write, Write::Cas { expected: Expected::Version(Version(7)), ttl: Some(t), .. } if t == Duration::from_millis(300))
        );
        assert!(Request::decode(b"k", None, &[]).is_err());
    }

    #[test]
    fn replies_carry_results_and_conflicts() {
        let write = Write::Cas {
            key: "k".into(),
            expected: Expected::Absent,
            value: Bytes::new(),
            ttl: None,
            timer: TimerChange::Keep,
        };
        let r = Request {
            write: write.clone(),
            rid: 1,
            to: "m".into(),
            reply_partition: 0,
            deadline_ms: 0,
        };
        let mut done = Done::answered(false, Version(9));
        done.offset = 12;
        let (_, headers) = r.reply(&Ok(done.clone()));
        let back = Reply::decode(&strings(headers)).expect("decodes");
        assert_eq!(back.result(&write).ok(), Some(done));
        let (_, headers) = r.reply(&Err(conflict("k", Expected::Absent, Some(Version(5)))));
        let err = Reply::decode(&strings(headers))
            .expect("decodes")
            .result(&write)
            .expect_err("conflict");
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert_eq!(err.context_value("actual"), Some("v5"));
    }
}
