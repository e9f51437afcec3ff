//! Which dispatches this instance is running right now, and which it
//! finished lately, so that another delivery of the same command is not
//! run a second time here:
//!
//! * while the first copy runs (a transport redelivering during a server
//!   restart), the second is handed back;
//! * once the first copy's result is published, a later copy is acked
//!   unrun: the result is durable on the results queue and will be
//!   applied. The fence cannot tell: until that result is applied, the
//!   state still waits for the dispatch (and a store whose reads lag, like
//!   the Kafka store's view, says so a little longer). The Kafka chaos run
//!   found one process running a step twice 1–7 s apart this way.
//!
//! A dispatch is `(tx, step, kind, attempt, token)`: a retry or a guard's
//! re-dispatch is another one. Finished dispatches are kept for
//! [`FINISHED_KEPT`], at most [`FINISHED_MAX`] of them (the oldest go
//! first), so memory stays bounded at any rate; past that, a repeat runs
//! again, as it would on another instance (at least once).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustc_hash::FxHashSet;

use super::messages::Command;

/// How long a finished dispatch is remembered.
pub(crate) const FINISHED_KEPT: Duration = Duration::from_secs(120);
/// How many finished dispatches are remembered at most (about 150 bytes
/// each).
pub(crate) const FINISHED_MAX: usize = 65_536;

/// The dispatches running here, and those finished lately.
#[derive(Default)]
pub(crate) struct Running {
    keys: Mutex<FxHashSet<String>>,
    finished: Mutex<Finished>,
}

/// Finished dispatches, with when they finished, oldest first.
#[derive(Default)]
struct Finished {
    keys: FxHashSet<String>,
    order: VecDeque<(Instant, String)>,
}

impl Finished {
    fn forget_old(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < FINISHED_KEPT && self.order.len() <= FINISHED_MAX {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.keys.remove(&key);
            }
        }
    }
}

/// Why a dispatch cannot be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// A copy of it runs here now.
    Running,
    /// A copy of it finished here lately, its result published.
    Finished,
}

/// A dispatch running here; dropping it ends the run (unfinished: a later
/// copy may run), [`Claim::finished`] ends it with its result published.
pub(crate) struct Claim<'a> {
    running: &'a Running,
    key: String,
}

impl Running {
    /// Claims `cmd`'s dispatch, unless a copy of it runs or finished here.
    pub(crate) fn claim(&self, cmd: &Command) -> Result<Claim<'_>, Seen> {
        let key = format!(
            "{}/{}/{:?}/{}/{}",
            cmd.tx, cmd.step, cmd.kind, cmd.attempt, cmd.token
        );
        // Locks in one order, `keys` then `finished`, here and in
        // `finished()`: a copy cannot slip between a run's end and its
        // record as finished.
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut finished = self.finished.lock().unwrap_or_else(|p| p.into_inner());
            finished.forget_old(Instant::now());
            if finished.keys.contains(&key) {
                return Err(Seen::Finished);
            }
        }
        // Not `then_some`: it would build (and drop) a claim on refusal too,
        // and that drop would free the running copy's key.
        if !keys.insert(key.clone()) {
            return Err(Seen::Running);
        }
        drop(keys);
        Ok(Claim { running: self, key })
    }
}

impl Claim<'_> {
    /// The run ended and its result is published: a later copy is acked
    /// unrun (for [`FINISHED_KEPT`]).
    pub(crate) fn finished(self) {
        let now = Instant::now();
        let mut keys = self.running.keys.lock().unwrap_or_else(|p| p.into_inner());
        let mut finished = self.running.finished.lock().unwrap_or_else(|p| p.into_inner());
        if finished.keys.insert(self.key.clone()) {
            finished.order.push_back((now, self.key.clone()));
        }
        finished.forget_old(now);
        keys.remove(&self.key);
        drop(finished);
        drop(keys);
        // `self` drops here; its key is already gone.
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut keys = self.running.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrator::StepKind;

    fn command(attempt: u32, token: u64) -> Command {
        Command {
            tx: "t".into(),
            workflow: "w".into(),
            step: 0,
            step_name: "a".into(),
            kind: StepKind::Forward,
            attempt,
            worker: "x".into(),
            input: bytes::Bytes::new(),
            basis: 0,
            token,
            timeout_ms: 0,
            queue_deadline_ms: None,
            created_ms: 0,
            guard_due_ms: None,
            trace: None,
        }
    }

    #[test]
    fn a_second_copy_of_a_running_dispatch_is_refused_until_the_first_ends() {
        let running = Running::default();
        let first = running.claim(&command(1, 7)).expect("first copy");
        assert_eq!(
            running.claim(&command(1, 7)).err(),
            Some(Seen::Running),
            "the same dispatch twice"
        );
        let other = running.claim(&command(2, 8));
        assert!(other.is_ok(), "another attempt is another dispatch");
        drop(first);
        assert!(
            running.claim(&command(1, 7)).is_ok(),
            "free again once it ended unfinished (no result published)"
        );
    }

    #[test]
    fn a_copy_of_a_finished_dispatch_is_refused_as_finished() {
        let running = Running::default();
        running.claim(&command(1, 7)).expect("first copy").finished();
        assert_eq!(running.claim(&command(1, 7)).err(), Some(Seen::Finished));
        assert!(
            running.claim(&command(1, 8)).is_ok(),
            "another token is another dispatch"
        );
    }

    #[test]
    fn finished_dispatches_are_bounded_in_number() {
        let running = Running::default();
        for token in 0..(FINISHED_MAX as u64 + 10) {
            running.claim(&command(1, token)).expect("claim").finished();
        }
        let kept = running.finished.lock().expect("lock").keys.len();
        assert_eq!(kept, FINISHED_MAX);
        assert!(running.claim(&command(1, 0)).is_ok(), "the oldest was forgotten");
        assert_eq!(
            running.claim(&command(1, FINISHED_MAX as u64 + 9)).err(),
            Some(Seen::Finished),
            "the newest is kept"
        );
    }
}
