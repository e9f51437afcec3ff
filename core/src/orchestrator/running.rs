//! Which dispatches this instance is running right now, so that a second
//! delivery of the same command (a transport redelivering while the first
//! copy still runs here, as after a server restart) is handed back instead
//! of running the step a second time beside the first. The fence cannot
//! tell the two apart: both copies find the state waiting for them.

use std::sync::Mutex;

use rustc_hash::FxHashSet;

use super::messages::Command;

/// The dispatches running here, by `(tx, step, kind, attempt, token)`.
#[derive(Default)]
pub(crate) struct Running {
    keys: Mutex<FxHashSet<String>>,
}

/// A dispatch running here; dropping it ends the run.
pub(crate) struct Claim<'a> {
    running: &'a Running,
    key: String,
}

impl Running {
    /// Claims `cmd`'s dispatch; `None` when a copy of it already runs here.
    pub(crate) fn claim(&self, cmd: &Command) -> Option<Claim<'_>> {
        let key = format!(
            "{}/{}/{:?}/{}/{}",
            cmd.tx, cmd.step, cmd.kind, cmd.attempt, cmd.token
        );
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        // Not `then_some`: it would build (and drop) a claim on refusal too,
        // and that drop would free the running copy's key.
        if !keys.insert(key.clone()) {
            return None;
        }
        drop(keys);
        Some(Claim { running: self, key })
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
            input: Vec::new(),
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
        assert!(running.claim(&command(1, 7)).is_none(), "the same dispatch twice");
        let other = running.claim(&command(2, 8));
        assert!(other.is_some(), "another attempt is another dispatch");
        drop(first);
        assert!(
            running.claim(&command(1, 7)).is_some(),
            "free again once it ended"
        );
    }
}
