//! The guard timer of steps run in-process, as the store sees it: a step
//! that follows a fast one keeps the guard where it stands (the write does
//! not touch the timer); one that follows a step whose runner renewed the
//! guard gets it moved; each step runs once either way.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use multiagents::orchestrator::OrchestratorConfig;
use multiagents::scheduler::{Scheduler, TimerChange};
use multiagents::store::{Expected, PutEntry, ScanPage, StoreCapabilities, Version, Versioned};
use multiagents::worker::WorkerHost;
use multiagents::{MemoryStore, MemoryTransport, Result, StateStore};

use multiagents_core::conformance::orchestrator::{Behave, Journal, register};

/// The memory store, logging what each state write does to its timer.
struct TimerLog(MemoryStore, Arc<Mutex<Vec<&'static str>>>);

#[async_trait]
impl StateStore for TimerLog {
    fn capabilities(&self) -> StoreCapabilities {
        self.0.capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        self.0.get(key).await
    }
    async fn get_fresh(&self, key: &str) -> Result<Option<Versioned>> {
        self.0.get_fresh(key).await
    }
    async fn put(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<Version> {
        self.0.put(key, value, ttl).await
    }
    async fn put_batch(&self, entries: Vec<PutEntry>) -> Result<Vec<Version>> {
        self.0.put_batch(entries).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.0.delete(key).await
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        e: Expected,
        v: Bytes,
        ttl: Option<Duration>,
    ) -> Result<Version> {
        self.0.compare_and_swap(key, e, v, ttl).await
    }
    fn scheduler(&self) -> Option<Arc<dyn Scheduler>> {
        self.0.scheduler()
    }
    async fn compare_and_swap_timed(
        &self,
        key: &str,
        e: Expected,
        v: Bytes,
        ttl: Option<Duration>,
        timer: TimerChange,
    ) -> Result<Version> {
        let what = match timer {
            TimerChange::Keep => "keep",
            TimerChange::At(_) => "at",
            TimerChange::Clear => "clear",
        };
        let written = self.0.compare_and_swap_timed(key, e, v, ttl, timer).await;
        if written.is_ok() {
            self.1.lock().expect("log").push(what);
        }
        written
    }
    async fn scan(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<ScanPage> {
        self.0.scan(prefix, cursor, limit).await
    }
}

/// Runs a → b → c in-process, `b` and `c` behaving `later`, with a guard
/// slack of `slack`; returns the timer changes of the writes and the steps
/// run.
async fn run(later: Behave, slack: Duration) -> (Vec<&'static str>, Vec<String>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let journal = Journal::default();
    let host = WorkerHost::builder().build().expect("host");
    // Not instant: a dispatch in the same millisecond as the one before
    // would land on the same due time, kept without the rule under test.
    register(&host, &journal, "a", Behave::Slow(3));
    register(&host, &journal, "b", later);
    register(&host, &journal, "c", later);
    let tx = super::local::run_abc(
        Arc::new(MemoryTransport::new()),
        Arc::new(TimerLog(MemoryStore::new(), log.clone())),
        host,
        OrchestratorConfig::default().with_guard_slack(slack),
    )
    .await;
    let changes = log.lock().expect("log").clone();
    (changes, journal.for_tx(&tx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_steps_keep_the_guard_the_first_one_armed() {
    let (changes, ran) = run(Behave::Slow(3), Duration::from_secs(10)).await;
    assert_eq!(ran, ["a", "b", "c"]);
    // Armed with the dispatch of a, kept for b and c, cleared at the end.
    assert_eq!(changes, ["at", "keep", "keep", "clear"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_that_renew_the_guard_move_it_and_nothing_runs_twice() {
    // b and c each outlast several renewals (every 100 ms). c's dispatch
    // moves the guard to where b's runner left it (or a fresh slack away),
    // and c renews it from there: a due time that was not where the guard
    // stands would fail c's renewal, drop its result, and run c again.
    let (changes, ran) = run(Behave::Slow(450), Duration::from_millis(300)).await;
    assert_eq!(ran, ["a", "b", "c"], "each step once");
    // b's dispatch keeps a's guard or moves it (as a's write was fast or
    // not); c's moves the guard b renewed.
    assert_eq!(changes.len(), 4, "{changes:?}");
    assert_eq!(
        (changes[0], changes[2], changes[3]),
        ("at", "at", "clear"),
        "{changes:?}"
    );
}
