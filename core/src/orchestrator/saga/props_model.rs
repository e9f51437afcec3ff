//! The engine as the saga property test (`props`) sees it, without a
//! backend: a versioned state written by compare-and-swap, commands and
//! timers published before the write, results after a run, writes that
//! lose their race or land late; and, when steps are placed in-process,
//! runs that start once their write lands, whose guard is held off while
//! they run, and which finish, find no permit, or die with the instance.
//! `check_no_double_dispatch` is the property checked after every step.
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::workflow::{RetryPolicy, StepDef};

/// Stands in for the trigger of a slow write until it is known.
fn placeholder() -> Command {
    Command {
        tx: String::new(),
        workflow: String::new(),
        step: 0,
        step_name: String::new(),
        kind: StepKind::Forward,
        attempt: 0,
        worker: String::new(),
        input: bytes::Bytes::new(),
        basis: 0,
        token: 0,
        timeout_ms: 0,
        queue_deadline_ms: None,
        created_ms: 0,
        guard_due_ms: None,
        trace: None,
    }
}

/// A message on the model's queues.
#[derive(Debug, Clone)]
pub(super) enum Msg {
    Cmd(Command),
    Res(StepResult),
    Tmr(Timer),
}

pub(super) struct Model {
    wf: WorkflowDef,
    pub(super) state: SagaState,
    version: u64,
    pub(super) queue: Vec<Msg>,
    /// Tokens run per `(step, kind, attempt)`.
    ran: HashMap<Attempt, BTreeSet<u64>>,
    now: u64,
    /// A slow write: its effects are out, the compare-and-swap (new state
    /// over `basis`) lands later, and its trigger is settled only then;
    /// the steps it places in-process start when it lands.
    pub(super) pending: Option<(SagaState, u64, Msg, Vec<Command>)>,
    /// The next advance is slow (see `pending`).
    pub(super) slow: bool,
    /// Whether dispatches may be placed in-process at all.
    local: bool,
    /// Whether this instance takes the next in-process dispatch (its
    /// worker and a free permit; set at random before each operation).
    pub(super) here: Arc<AtomicBool>,
    /// In-process runs under way (their write landed).
    pub(super) running: Vec<Command>,
    /// In-process runs (by token) whose guard is no longer renewed (a
    /// renewal found the timer moved, or kept failing): the guard may fire
    /// while they run, and their result is dropped (the lease check).
    unrenewed: HashSet<u64>,
    /// Runs each attempt may have beyond its first: one per in-process run
    /// of it that died with its instance, was aborted at a shutdown past
    /// its deadline (handed over mid-run), lost its guard's renewal, or
    /// ended with its result queued.
    excused: HashMap<Attempt, usize>,
}

type Attempt = (usize, StepKind, u32);

fn attempt_of(c: &Command) -> Attempt {
    (c.step, c.kind, c.attempt)
}

fn wf() -> WorkflowDef {
    let retry = RetryPolicy::attempts(3, Duration::from_millis(1)).without_jitter();
    let step = |name: &str, undo: Option<&str>| {
        let s = StepDef::new(name, name)
            .retry(retry.clone())
            .queue_timeout(Duration::from_millis(5));
        match undo {
            Some(u) => s.compensate_with(u),
            None => s,
        }
    };
    WorkflowDef::builder("w")
        .step(step("a", Some("undo-a")))
        .step(step("b", Some("undo-b")))
        .step(step("c", None))
        .build()
}

impl Model {
    pub(super) fn new(local: bool) -> Model {
        let wf = wf();
        let mut state = SagaState::new(&TransactionId::from("t"), &wf, json!({"order": 7}), 0);
        state.trace = Some(crate::trace::TraceParent::new_root());
        let mut m = Model {
            wf,
            state: state.clone(),
            version: 1,
            queue: Vec::new(),
            ran: HashMap::new(),
            now: 0,
            pending: None,
            slow: false,
            local,
            here: Arc::new(AtomicBool::new(true)),
            running: Vec::new(),
            unrenewed: HashSet::new(),
            excused: HashMap::new(),
        };
        let mut fx = m.effects(0);
        state.start(&m.wf, 0, &mut fx);
        encoded::assert_written_as_derived(&mut state);
        m.state = state;
        let local = m.publish(fx);
        m.start(local);
        m
    }

    /// The effects of a write over `basis`, with steps placed in-process
    /// when the model does that.
    fn effects(&self, basis: u64) -> Effects {
        let mut fx = Effects::over(basis);
        if self.local {
            let here = Arc::clone(&self.here);
            fx.placement = Some(Placement {
                run_here: Arc::new(move |_: &str| here.load(Ordering::Relaxed)),
                guard_slack_ms: 60,
                renewed: true,
            });
        }
        fx
    }

    /// Publishes what goes out before the write; returns the steps placed
    /// in-process (they start once the write lands).
    fn publish(&mut self, fx: Effects) -> Vec<Command> {
        self.queue.extend(fx.commands.into_iter().map(Msg::Cmd));
        self.queue.extend(fx.timers.into_iter().map(Msg::Tmr));
        fx.local
    }

    /// In-process runs start: the write that placed them landed.
    fn start(&mut self, local: Vec<Command>) {
        self.running.extend(local);
    }

    /// A worker ran `c` (queued or in-process).
    fn record_run(&mut self, c: &Command) {
        self.ran.entry(attempt_of(c)).or_default().insert(c.token);
    }

    /// What the worker answers to `c`: `outcome` picks an error or a
    /// success (which changes the context).
    fn result_of(c: &Command, outcome: u8) -> StepResult {
        let outcome = match outcome % 4 {
            0 => Outcome::Err {
                kind: "unavailable".into(),
                retryable: true,
                message: "flaked".into(),
            },
            1 if c.kind == StepKind::Forward => Outcome::Err {
                kind: "invalid_input".into(),
                retryable: false,
                message: "no".into(),
            },
            2 => Outcome::Err {
                kind: "timeout".into(),
                retryable: true,
                message: "slow".into(),
            },
            _ => {
                let mut out = Vec::new();
                let v = json!({ format!("s{}", c.step): c.attempt });
                ciborium::into_writer(&v, &mut out).expect("encodes");
                Outcome::Ok(out)
            }
        };
        StepResult {
            tx: c.tx.clone(),
            step: c.step,
            kind: c.kind,
            attempt: c.attempt,
            outcome,
            token: c.token,
            guard_due_ms: None,
            trace: None,
        }
    }

    /// A run of `c`'s attempt beyond its first becomes possible.
    fn excuse(&mut self, c: &Command) {
        *self.excused.entry(attempt_of(c)).or_default() += 1;
    }

    /// In-process run `j` ends: its worker ran and the runner writes the
    /// result; a write that loses its race queues the result instead (and
    /// the guard, no longer renewed, may fire before it lands). A run whose
    /// guard was not renewed drops its result.
    pub(super) fn finish_local(&mut self, j: usize, outcome: u8, lose: bool) {
        let c = self.running.remove(j);
        self.record_run(&c);
        if self.unrenewed.remove(&c.token) {
            return;
        }
        let r = Model::result_of(&c, outcome);
        let written = self.advance(lose, |s, wf, now, fx| {
            if !s.expects(r.step, r.kind, r.attempt, Stage::Running, r.token) {
                return false;
            }
            s.on_result(wf, &r, now, fx);
            true
        });
        if !written {
            self.excuse(&c);
            self.queue.push(Msg::Res(r));
        }
    }

    /// In-process run `j` is handed over to the queue (if the state still
    /// waits for it; a lost write leaves it to the guard): it found no
    /// permit after all (its worker did not run), or, `aborted`, a
    /// shutdown past its deadline dropped it mid-run.
    pub(super) fn hand_over(&mut self, j: usize, lose: bool, aborted: bool) {
        let c = self.running.remove(j);
        if aborted {
            self.record_run(&c);
            self.excuse(&c);
        }
        let _ = self.advance(lose, |s, wf, now, fx| {
            if !s.expects(c.step, c.kind, c.attempt, Stage::Running, c.token) {
                return false;
            }
            s.hand_over(wf, &c, now, fx);
            true
        });
    }

    /// The instance dies: its in-process runs end unreported, having run
    /// (or not) any part of their worker.
    pub(super) fn crash(&mut self) {
        for c in std::mem::take(&mut self.running) {
            self.record_run(&c);
            self.excuse(&c);
        }
    }

    /// In-process run `j`'s guard renewal finds the timer moved, or keeps
    /// failing: the guard may fire while it still runs.
    pub(super) fn lose_renewal(&mut self, j: usize) {
        let c = self.running[j].clone();
        if self.unrenewed.insert(c.token) {
            self.excuse(&c);
        }
    }

    /// Applies `f` to a copy of the state over the current version; the
    /// effects are published first; `lose` makes the write lose its race.
    fn advance(
        &mut self,
        lose: bool,
        f: impl FnOnce(&mut SagaState, &WorkflowDef, u64, &mut Effects) -> bool,
    ) -> bool {
        let mut next = self.state.clone();
        let mut fx = self.effects(self.version);
        if !f(&mut next, &self.wf, self.now, &mut fx) {
            return true; // nothing to do: handled
        }
        let local = self.publish(fx);
        if lose {
            return false; // published, not written: the trigger comes back
        }
        if self.slow {
            self.pending = Some((next, self.version, Msg::Cmd(placeholder()), local));
            return true; // the trigger is parked with the write
        }
        self.state = next;
        self.version += 1;
        encoded::assert_written_as_derived(&mut self.state);
        self.start(local);
        true
    }

    /// The slow write lands now: it wins when nothing was written since
    /// its read, else it loses and its trigger comes back.
    pub(super) fn land(&mut self) {
        if let Some((next, basis, trigger, local)) = self.pending.take() {
            if basis == self.version {
                self.state = next;
                self.version += 1;
                encoded::assert_written_as_derived(&mut self.state);
                self.start(local);
            } else {
                self.queue.push(trigger);
            }
        }
    }

    /// Delivers message `i`; returns whether it is settled (else it stays).
    pub(super) fn deliver(&mut self, i: usize, outcome: u8, lose: bool) -> bool {
        self.now += 1;
        match self.queue[i].clone() {
            Msg::Cmd(c) => {
                let want = Waiting {
                    step: c.step,
                    kind: c.kind,
                    attempt: c.attempt,
                    stage: Stage::Running,
                    token: c.token,
                };
                match Fence::judge(Some((self.state.waiting, self.version)), want, c.basis) {
                    Fence::Early => false,
                    Fence::Stale => true,
                    Fence::Current => {
                        self.record_run(&c);
                        self.queue.push(Msg::Res(Model::result_of(&c, outcome)));
                        true
                    }
                }
            }
            Msg::Res(r) => self.advance(lose, |s, wf, now, fx| {
                if !s.expects(r.step, r.kind, r.attempt, Stage::Running, r.token) {
                    return false;
                }
                s.on_result(wf, &r, now, fx);
                true
            }),
            // The guard of a step running here is renewed while it runs:
            // it does not come due.
            Msg::Tmr(t)
                if t.purpose == TimerPurpose::Guard
                    && self.running.iter().any(|c| {
                        (c.step, c.kind, c.attempt, c.token) == (t.step, t.kind, t.attempt, t.token)
                            && !self.unrenewed.contains(&c.token)
                    }) =>
            {
                false
            }
            Msg::Tmr(t) => {
                let want = SagaState::timer_wait(&t);
                match Fence::judge(Some((self.state.waiting, self.version)), want, t.basis) {
                    Fence::Early => false,
                    Fence::Stale => true,
                    Fence::Current => self.advance(lose, |s, wf, now, fx| s.on_timer(wf, &t, now, fx)),
                }
            }
        }
    }

    pub(super) fn cancel(&mut self) {
        let _ = self.advance(false, |s, wf, now, fx| s.cancel(wf, now, fx).is_ok());
    }

    pub(super) fn check_no_double_dispatch(&self) {
        // A record marked lost (its guard fired) may be followed by another
        // dispatch of the same attempt; nothing else may.
        let mut open = HashSet::new();
        for h in &self.state.history {
            if h.attempt == 0 {
                continue; // skipped steps
            }
            assert!(
                open.insert((h.step.clone(), h.kind, h.attempt)),
                "attempt dispatched twice: {h:?} in {:#?}",
                self.state.history
            );
            if h.outcome.as_deref() == Some("lost") {
                open.remove(&(h.step.clone(), h.kind, h.attempt));
            }
        }
        for (attempt, tokens) in &self.ran {
            assert!(
                tokens.len() <= 1 + self.excused.get(attempt).copied().unwrap_or(0),
                "more runs of {attempt:?} than one plus one per run of it lost: {tokens:?}, excused {:?}",
                self.excused.get(attempt)
            );
        }
    }
}
