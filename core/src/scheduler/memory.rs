//! [`MemoryScheduler`]: the in-process timers of a [`MemoryStore`](crate::MemoryStore):
//! per scope an ordered set of `(due, key)`, beside a map of each key's
//! timer, behind one mutex. Every change (a set, a claim) gets a fresh
//! generation, which is what a claim is settled against.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::{DueTimer, Scheduler, SchedulerCapabilities, Settle, TimerChange, check_claim, millis, scope_of};
use crate::error::Result;
use crate::validate;

/// How often the orchestrator looks for due in-process timers.
const POLL: Duration = Duration::from_millis(5);

#[derive(Debug, Default)]
struct Timers {
    /// Key → (due, generation).
    by_key: HashMap<String, (u64, u64)>,
    /// Scope → (due, key), earliest first.
    by_due: HashMap<String, BTreeSet<(u64, String)>>,
    generation: u64,
}

impl Timers {
    fn set(&mut self, key: &str, due: u64) {
        self.generation += 1;
        let old = self.by_key.insert(key.to_string(), (due, self.generation));
        let scope = self.by_due.entry(scope_of(key).to_string()).or_default();
        if let Some((old, _)) = old {
            scope.remove(&(old, key.to_string()));
        }
        scope.insert((due, key.to_string()));
    }

    fn remove(&mut self, key: &str) -> bool {
        let Some((due, _)) = self.by_key.remove(key) else {
            return false;
        };
        let scope = scope_of(key);
        if let Some(set) = self.by_due.get_mut(scope) {
            set.remove(&(due, key.to_string()));
            if set.is_empty() {
                self.by_due.remove(scope);
            }
        }
        true
    }
}

/// In-process timers (see the [module docs](crate::scheduler)).
#[derive(Debug, Default)]
pub struct MemoryScheduler {
    timers: Mutex<Timers>,
}

impl MemoryScheduler {
    /// No timers.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timers> {
        self.timers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a timed write's change (the store calls it while it holds
    /// the key's lock, so the two are one step).
    pub(crate) fn apply(&self, key: &str, change: TimerChange) {
        match change {
            TimerChange::Keep => {}
            TimerChange::At(due) => self.lock().set(key, due),
            TimerChange::Clear => {
                self.lock().remove(key);
            }
        }
    }
}

#[async_trait]
impl Scheduler for MemoryScheduler {
    fn capabilities(&self) -> SchedulerCapabilities {
        SchedulerCapabilities::new("memory", POLL)
    }

    async fn schedule(&self, key: &str, due_ms: u64) -> Result<()> {
        validate::key(key)?;
        self.lock().set(key, due_ms);
        Ok(())
    }

    async fn cancel(&self, key: &str) -> Result<bool> {
        validate::key(key)?;
        Ok(self.lock().remove(key))
    }

    async fn claim_due(
        &self,
        scope: &str,
        now_ms: u64,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<DueTimer>> {
        check_claim(limit, lease, "memory.scheduler.claim_due")?;
        let mut timers = self.lock();
        let due: Vec<(u64, String)> = match timers.by_due.get(scope) {
            None => return Ok(Vec::new()),
            Some(set) => set
                .iter()
                .take_while(|(due, _)| *due <= now_ms)
                .take(limit)
                .cloned()
                .collect(),
        };
        let again = now_ms.saturating_add(millis(lease));
        let mut claimed = Vec::with_capacity(due.len());
        for (due_ms, key) in due {
            timers.set(&key, again);
            let claim = timers.generation;
            claimed.push(DueTimer { key, due_ms, claim });
        }
        Ok(claimed)
    }

    async fn settle(&self, key: &str, claim: u64, how: Settle) -> Result<bool> {
        validate::key(key)?;
        let mut timers = self.lock();
        if timers.by_key.get(key).map(|&(_, generation)| generation) != Some(claim) {
            return Ok(false);
        }
        match how {
            Settle::Done => {
                timers.remove(key);
            }
            Settle::At(due) => timers.set(key, due),
        }
        Ok(true)
    }

    async fn move_if(&self, key: &str, from_ms: u64, to_ms: u64) -> Result<bool> {
        validate::key(key)?;
        let mut timers = self.lock();
        if timers.by_key.get(key).map(|&(due, _)| due) != Some(from_ms) {
            return Ok(false);
        }
        timers.set(key, to_ms);
        Ok(true)
    }

    async fn next_due(&self, scope: &str) -> Result<Option<u64>> {
        let timers = self.lock();
        Ok(timers
            .by_due
            .get(scope)
            .and_then(|set| set.first())
            .map(|(due, _)| *due))
    }

    async fn pending(&self, scope: &str) -> Result<u64> {
        Ok(self.lock().by_due.get(scope).map_or(0, |s| s.len() as u64))
    }
}
