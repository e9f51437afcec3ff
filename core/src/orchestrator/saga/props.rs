//! A property test of the saga transitions and the fence, without a
//! backend: a model of the engine (a versioned state written by
//! compare-and-swap, commands and timers published before the write,
//! results after a run) driven through random interleavings of duplicated
//! deliveries, lost compare-and-swap races, late results, timers and
//! cancels. Whatever the order:
//!
//! * no attempt of a step is ever dispatched twice (one history record per
//!   `(step, kind, attempt)`), and no two dispatches of one attempt both run;
//! * once the storm is over and every message is delivered, the
//!   transaction is final: nothing strands;
//! * every state written encodes as its derived `Serialize` would, kept
//!   encodings and all (`encoded`).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use proptest::prelude::*;
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
enum Msg {
    Cmd(Command),
    Res(StepResult),
    Tmr(Timer),
}

struct Model {
    wf: WorkflowDef,
    state: SagaState,
    version: u64,
    queue: Vec<Msg>,
    /// Tokens run per `(step, kind, attempt)`.
    ran: HashMap<(usize, StepKind, u32), BTreeSet<u64>>,
    now: u64,
    /// A slow write: its effects are out, the compare-and-swap (new state
    /// over `basis`) lands later, and its trigger is settled only then.
    pending: Option<(SagaState, u64, Msg)>,
    /// The next advance is slow (see `pending`).
    slow: bool,
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
    fn new() -> Model {
        let wf = wf();
        let mut state = SagaState::new(&TransactionId::from("t"), &wf, json!({"order": 7}), 0);
        state.trace = Some(crate::trace::TraceParent::new_root());
        let mut fx = Effects::over(0);
        state.start(&wf, 0, &mut fx);
        encoded::assert_written_as_derived(&mut state);
        let mut m = Model {
            wf,
            state,
            version: 1,
            queue: Vec::new(),
            ran: HashMap::new(),
            now: 0,
            pending: None,
            slow: false,
        };
        m.publish(fx);
        m
    }

    fn publish(&mut self, fx: Effects) {
        self.queue.extend(fx.commands.into_iter().map(Msg::Cmd));
        self.queue.extend(fx.timers.into_iter().map(Msg::Tmr));
    }

    /// Applies `f` to a copy of the state over the current version; the
    /// effects are published first; `lose` makes the write lose its race.
    fn advance(
        &mut self,
        lose: bool,
        f: impl FnOnce(&mut SagaState, &WorkflowDef, u64, &mut Effects) -> bool,
    ) -> bool {
        let mut next = self.state.clone();
        let mut fx = Effects::over(self.version);
        if !f(&mut next, &self.wf, self.now, &mut fx) {
            return true; // nothing to do: handled
        }
        self.publish(fx);
        if lose {
            return false; // published, not written: the trigger comes back
        }
        if self.slow {
            self.pending = Some((next, self.version, Msg::Cmd(placeholder())));
            return true; // the trigger is parked with the write
        }
        self.state = next;
        self.version += 1;
        encoded::assert_written_as_derived(&mut self.state);
        true
    }

    /// The slow write lands now: it wins when nothing was written since
    /// its read, else it loses and its trigger comes back.
    fn land(&mut self) {
        if let Some((next, basis, trigger)) = self.pending.take() {
            if basis == self.version {
                self.state = next;
                self.version += 1;
                encoded::assert_written_as_derived(&mut self.state);
            } else {
                self.queue.push(trigger);
            }
        }
    }

    /// Delivers message `i`; returns whether it is settled (else it stays).
    fn deliver(&mut self, i: usize, outcome: u8, lose: bool) -> bool {
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
                        self.ran
                            .entry((c.step, c.kind, c.attempt))
                            .or_default()
                            .insert(c.token);
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
                            // Each result changes the context.
                            _ => {
                                let mut out = Vec::new();
                                let v = json!({ format!("s{}", c.step): c.attempt });
                                ciborium::into_writer(&v, &mut out).expect("encodes");
                                Outcome::Ok(out)
                            }
                        };
                        self.queue.push(Msg::Res(StepResult {
                            tx: c.tx,
                            step: c.step,
                            kind: c.kind,
                            attempt: c.attempt,
                            outcome,
                            token: c.token,
                            guard_due_ms: None,
                            trace: None,
                        }));
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

    fn cancel(&mut self) {
        let _ = self.advance(false, |s, wf, now, fx| s.cancel(wf, now, fx).is_ok());
    }

    fn check_no_double_dispatch(&self) {
        let mut seen = std::collections::HashSet::new();
        for h in &self.state.history {
            if h.attempt == 0 {
                continue; // skipped steps
            }
            assert!(
                seen.insert((h.step.clone(), h.kind, h.attempt)),
                "attempt dispatched twice: {h:?} in {:#?}",
                self.state.history
            );
        }
        for (attempt, tokens) in &self.ran {
            assert!(
                tokens.len() <= 1,
                "two dispatches of {attempt:?} both ran: {tokens:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_interleavings_never_advance_twice_and_never_strand(
        ops in proptest::collection::vec((0u8..10, any::<u16>(), any::<u8>()), 0..120),
    ) {
        let mut m = Model::new();
        for (op, pick, outcome) in ops {
            if m.queue.is_empty() {
                m.land();
                if m.queue.is_empty() {
                    break;
                }
            }
            let i = pick as usize % m.queue.len();
            match op {
                // Deliver and settle (or keep, when early).
                0..=3 => {
                    if m.deliver(i, outcome, false) {
                        m.queue.remove(i);
                    }
                }
                // A duplicate delivery (redelivery): the message stays.
                4 => {
                    m.deliver(i, outcome, false);
                }
                // The handler's write loses a race: effects out, state not
                // written, the message comes back.
                5 => {
                    if m.deliver(i, outcome, true) {
                        m.queue.remove(i);
                    }
                }
                6 => m.cancel(),
                // A slow write: effects out now, the write lands later.
                7 if m.pending.is_none() => {
                    let trigger = m.queue[i].clone();
                    m.slow = true;
                    let settled = m.deliver(i, outcome, false);
                    m.slow = false;
                    match m.pending.as_mut() {
                        Some(p) => {
                            p.2 = trigger;
                            m.queue.remove(i);
                        }
                        None if settled => {
                            m.queue.remove(i);
                        }
                        None => {}
                    }
                }
                8 => m.land(),
                // A late message: moved to the back.
                _ => {
                    let msg = m.queue.remove(i);
                    m.queue.push(msg);
                }
            }
            m.check_no_double_dispatch();
        }
        // The storm is over: the slow write lands, then everything is
        // delivered in order, and workers succeed.
        m.land();
        let mut rounds = 0;
        while !m.queue.is_empty() && rounds < 10_000 {
            rounds += 1;
            let mut progressed = false;
            let mut i = 0;
            while i < m.queue.len() {
                if m.deliver(i, 3, false) {
                    m.queue.remove(i);
                    progressed = true;
                } else {
                    i += 1;
                }
            }
            if !progressed {
                // Only early messages left, whose write never landed:
                // orphans, dropped after the grace period.
                m.queue.clear();
            }
            m.check_no_double_dispatch();
        }
        prop_assert!(m.state.status.is_final(), "stranded: {:?} waiting {:?}", m.state.status, m.state.waiting);
    }
}
