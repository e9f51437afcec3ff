//! The history checker: from what the load test acknowledged, what the
//! idempotency ledger recorded and when each fault happened, it counts lost,
//! stuck, wrongly ended, out-of-order and doubly applied transactions, and
//! sorts each duplicate into *explained* (between the two applications: a
//! kill, pause or rebalance of a process that applied it, or a server
//! restart and its aftermath), a retry of an attempt recorded failed, or
//! unexplained.
//!
//! Pure: the harness gathers the inputs, the unit tests below feed it
//! histories with each kind of fault in them.

use std::collections::{BTreeMap, HashMap, HashSet};

use multiagents::orchestrator::SagaStatus;

/// The workflow the harness runs: forward steps in order; each but the last
/// has a compensation.
pub(super) const FORWARD: [&str; 3] = ["a", "b", "c"];
/// The steps that are compensated, in the order their compensations run.
pub(super) const UNDONE: [&str; 2] = ["b", "a"];
/// How far a fault's recorded time may be from the applications it explains
/// (the harness notes the time beside the signal, not in the same instant).
const SLACK_MS: u64 = 500;
/// How long a server restart goes on causing repeats after the server is
/// back: clients reconnect (a second or so), and the deliveries and calls
/// held across the restart are redelivered or time out within the 2 s ack
/// and request timeouts. A repeat applied this long after the restart can
/// still be its doing (seen on NATS: a command delivered before the crash
/// and again after it, both applied 0.9 s after the server was back).
const AFTERMATH_MS: u64 = 3_000;

/// One application of an effect, as the `ledger` worker recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    /// Its place in the transaction's ledger (`increment`, so total order).
    pub(super) seq: u64,
    /// `do` or `undo`.
    pub(super) role: String,
    pub(super) step: String,
    pub(super) attempt: u32,
    /// The process that applied it.
    pub(super) instance: String,
    /// Wall-clock time of the application (ms since the epoch).
    pub(super) at_ms: u64,
}

impl Entry {
    /// Parses a ledger value `"<role> <step> <attempt> <instance> <ms>"`.
    pub(super) fn parse(seq: u64, value: &str) -> Option<Entry> {
        let mut parts = value.split(' ');
        let entry = Entry {
            seq,
            role: parts.next()?.to_string(),
            step: parts.next()?.to_string(),
            attempt: parts.next()?.parse().ok()?,
            instance: parts.next()?.to_string(),
            at_ms: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(entry)
    }
}

/// What a fault hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// One `multiagents run` process, by its `instance` tag.
    Instance(String),
    /// The backend's server: every process lost it.
    Broker,
}

/// A fault over `[from_ms, to_ms]` (a kill: both the same instant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fault {
    pub(super) what: &'static str,
    pub(super) target: Target,
    pub(super) from_ms: u64,
    pub(super) to_ms: u64,
}

/// How an acknowledged transaction stood at the end of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// Its state says it is final.
    Final(SagaStatus),
    /// Its state is there but not final.
    Stuck(SagaStatus),
    /// Its state is not in the store.
    Missing,
}

/// The checker's findings; [`Verdict::clean`] when there is nothing wrong.
#[derive(Debug, Default)]
pub(super) struct Verdict {
    pub(super) acknowledged: usize,
    pub(super) completed: usize,
    pub(super) compensated: usize,
    pub(super) effects: usize,
    pub(super) explained_duplicates: usize,
    /// Repeats by a later attempt after the runtime recorded the earlier
    /// one failed (the worker reported an error after its effect landed,
    /// e.g. its own store call lost its reply during a server restart):
    /// a retry, which the saga's at-least-once contract allows.
    pub(super) retried_after_failure: usize,
    pub(super) lost: Vec<String>,
    pub(super) stuck: Vec<String>,
    /// Ended in the wrong state, or with effects that contradict it.
    pub(super) wrong: Vec<String>,
    pub(super) out_of_order: Vec<String>,
    pub(super) unexplained_duplicates: Vec<String>,
}

impl Verdict {
    /// No lost, stuck, wrong, out-of-order or unexplained double-applied
    /// transaction.
    pub(super) fn clean(&self) -> bool {
        self.lost.is_empty()
            && self.stuck.is_empty()
            && self.wrong.is_empty()
            && self.out_of_order.is_empty()
            && self.unexplained_duplicates.is_empty()
    }

    /// One line of counts, then up to 5 examples of each problem.
    pub(super) fn summary(&self) -> String {
        let mut text = format!(
            "{} acknowledged ({} completed, {} compensated), {} effects applied, \
             {} duplicates explained by a fault, {} repeated by a retry of a failed attempt; \
             lost {}, stuck {}, wrong {}, out of order {}, unexplained duplicates {}",
            self.acknowledged,
            self.completed,
            self.compensated,
            self.effects,
            self.explained_duplicates,
            self.retried_after_failure,
            self.lost.len(),
            self.stuck.len(),
            self.wrong.len(),
            self.out_of_order.len(),
            self.unexplained_duplicates.len()
        );
        for (name, list) in [
            ("lost", &self.lost),
            ("stuck", &self.stuck),
            ("wrong", &self.wrong),
            ("out of order", &self.out_of_order),
            ("unexplained duplicate", &self.unexplained_duplicates),
        ] {
            for example in list.iter().take(5) {
                text.push_str(&format!("\n  {name}: {example}"));
            }
        }
        text
    }
}

/// An attempt the runtime's history records as failed: `(tx, role, step,
/// attempt)`.
pub(super) type FailedAttempt = (String, String, String, u32);

/// Checks a run. `ends`: every transaction to judge (the acknowledged ones,
/// and those that ran unacknowledged); `ledger`: every
/// transaction's entries; `failed`: attempts the history records as failed
/// (the harness reads them for transactions with repeats); `fails`: whether
/// a transaction must end compensated (the ledger worker's rule).
pub(super) fn check(
    ends: &HashMap<String, End>,
    ledger: &HashMap<String, Vec<Entry>>,
    faults: &[Fault],
    failed: &HashSet<FailedAttempt>,
    fails: impl Fn(&str) -> bool,
) -> Verdict {
    let mut v = Verdict {
        acknowledged: ends.len(),
        effects: ledger.values().map(Vec::len).sum(),
        ..Verdict::default()
    };
    let none = Vec::new();
    for (tx, end) in ends {
        let status = match end {
            End::Missing => {
                v.lost.push(tx.clone());
                continue;
            }
            End::Stuck(s) => {
                v.stuck.push(format!("{tx} ({s})"));
                continue;
            }
            End::Final(s) => *s,
        };
        let entries = ledger.get(tx).unwrap_or(&none);
        let applied = by_effect(entries);
        let expected = if fails(tx) {
            SagaStatus::Compensated
        } else {
            SagaStatus::Completed
        };
        match status {
            SagaStatus::Completed => v.completed += 1,
            SagaStatus::Compensated => v.compensated += 1,
            _ => {}
        }
        if status != expected {
            v.wrong.push(format!("{tx} ended {status}, expected {expected}"));
            continue;
        }
        if let Some(why) = contradiction(status, &applied) {
            // Every effect, with who applied it when, for the forensics.
            v.wrong.push(format!(
                "{tx}: {why}; effects: {:?}",
                applied.values().flatten().collect::<Vec<_>>()
            ));
            continue;
        }
        if let Some(why) = disorder(status, &applied) {
            v.out_of_order.push(format!("{tx}: {why}"));
        }
        for ((role, step), runs) in &applied {
            for (i, later) in runs.iter().enumerate().skip(1) {
                let retry_of_failed = runs[..i].iter().any(|e| {
                    e.attempt < later.attempt
                        && failed.contains(&(tx.clone(), role.clone(), step.clone(), e.attempt))
                });
                if explained(&runs[..i], later, faults) {
                    v.explained_duplicates += 1;
                } else if retry_of_failed {
                    v.retried_after_failure += 1;
                } else {
                    v.unexplained_duplicates.push(format!(
                        "{tx}: {role} {step} applied {} times ({runs:?}) with no fault of {} \
                         or the broker between",
                        runs.len(),
                        runs[0].instance
                    ));
                }
            }
        }
    }
    v.lost.sort();
    v.stuck.sort();
    v
}

/// Entries by `(role, step)`, each list in ledger order.
fn by_effect(entries: &[Entry]) -> BTreeMap<(String, String), Vec<Entry>> {
    let mut map: BTreeMap<(String, String), Vec<Entry>> = BTreeMap::new();
    for e in entries {
        map.entry((e.role.clone(), e.step.clone()))
            .or_default()
            .push(e.clone());
    }
    for runs in map.values_mut() {
        runs.sort_by_key(|e| e.seq);
    }
    map
}

/// The effects `status` requires, as `(role, step)`, in the order they
/// must first be applied: every forward step, or those before the failing
/// one and then their compensations in reverse.
fn required(status: SagaStatus) -> Vec<(&'static str, &'static str)> {
    let forward = match status {
        SagaStatus::Completed => &FORWARD[..],
        _ => &FORWARD[..UNDONE.len()],
    };
    let undone = match status {
        SagaStatus::Completed => &[][..],
        _ => &UNDONE[..],
    };
    forward
        .iter()
        .map(|s| ("do", *s))
        .chain(undone.iter().map(|s| ("undo", *s)))
        .collect()
}

/// The transactions with an effect applied more than once.
pub(super) fn repeated(ledger: &HashMap<String, Vec<Entry>>) -> Vec<String> {
    ledger
        .iter()
        .filter(|(_, entries)| by_effect(entries).values().any(|runs| runs.len() > 1))
        .map(|(tx, _)| tx.clone())
        .collect()
}

/// Why the applied effects contradict `status`: one required is missing,
/// or one is there that must not be (a completed saga compensated, a
/// compensated one's failing step applied).
fn contradiction(status: SagaStatus, applied: &BTreeMap<(String, String), Vec<Entry>>) -> Option<String> {
    let needed = required(status);
    if let Some((role, step)) = needed
        .iter()
        .find(|(r, s)| !applied.contains_key(&(r.to_string(), s.to_string())))
    {
        return Some(format!("ended {status} but `{role} {step}` was never applied"));
    }
    if let Some((r, s)) = applied
        .keys()
        .find(|(r, s)| !needed.contains(&(r.as_str(), s.as_str())))
    {
        return Some(format!("ended {status} but `{r} {s}` was applied"));
    }
    // A step applied again after its compensation began undoes the undo,
    // whatever explains the repeat.
    UNDONE.iter().find_map(|step| {
        let undo = applied.get(&("undo".to_string(), step.to_string()))?.first()?.seq;
        let redo = applied
            .get(&("do".to_string(), step.to_string()))?
            .iter()
            .find(|e| e.seq > undo)?;
        Some(format!(
            "`do {step}` applied again (ledger place {}) after its compensation ({undo})",
            redo.seq
        ))
    })
}

/// Why the first applications are out of order: forward steps in workflow
/// order, then compensations in reverse.
fn disorder(status: SagaStatus, applied: &BTreeMap<(String, String), Vec<Entry>>) -> Option<String> {
    let order = required(status);
    let firsts: Vec<u64> = order
        .iter()
        .filter_map(|(r, s)| applied.get(&(r.to_string(), s.to_string())))
        .map(|runs| runs[0].seq)
        .collect();
    firsts
        .windows(2)
        .any(|w| w[0] >= w[1])
        .then(|| format!("first applications {order:?} at ledger places {firsts:?}"))
}

/// Whether `later` (a repeat application) is explained: some fault of the
/// broker, or of a process that applied the effect (before, or this time:
/// one paused mid-call applies late, after another took the step over),
/// falls between the first application and `later`.
fn explained(before: &[Entry], later: &Entry, faults: &[Fault]) -> bool {
    let from = before[0].at_ms.saturating_sub(SLACK_MS);
    let to = later.at_ms + SLACK_MS;
    faults.iter().any(|f| {
        let (hit, end) = match &f.target {
            Target::Broker => (true, f.to_ms + AFTERMATH_MS),
            Target::Instance(i) => (before.iter().chain([later]).any(|e| &e.instance == i), f.to_ms),
        };
        hit && f.from_ms <= to && end >= from
    })
}

#[cfg(test)]
#[path = "checker_tests.rs"]
mod tests;
