//! Resilience around each worker call, as small composable parts applied in
//! a fixed order (DESIGN.md §3):
//!
//! stats/tracing → circuit breaker → concurrency limit (per worker, then
//! global) → timeout → the call.
//!
//! | module | owns |
//! |---|---|
//! | [`clock`] | the injectable [`Clock`] (tests move time by hand) |
//! | [`breaker`] | [`CircuitBreaker`]: closed / open / half-open |
//! | [`limit`] | [`ConcurrencyLimit`]: permits held for the call, bounded wait queue, `Overloaded` |
//! | [`stats`] | [`CallStats`]: counts and latency percentiles |
//! | [`memory`] | [`MemoryGuard`]: load shedding when the process nears its memory limit |
//! | [`process`] | [`ProcessProbe`]: resident set against the cgroup (or machine) limit |
//!
//! [`Guard`] puts them together for one worker. The pieces are our own
//! rather than `tower` layers because the contract needs things tower's
//! stock layers do not give: a *bounded* wait queue that answers with a typed
//! `Overloaded` error, a breaker that ignores a worker's deliberate (fatal)
//! business errors, and a deterministic clock; each is ~100–250 lines with
//! its own tests.
//!
//! The per-worker limit is taken before the global one, so a call queued
//! behind its own worker's limit never holds a global slot.

pub mod aimd;
pub mod breaker;
pub mod clock;
pub mod limit;
pub mod memory;
pub mod process;
pub mod stats;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use aimd::AdaptiveConfig;
pub use breaker::{BreakerConfig, BreakerPermit, BreakerState, CircuitBreaker};
pub use clock::{Clock, ManualClock, SystemClock};
pub use limit::{ConcurrencyLimit, LimitPermit};
pub use memory::{
    ManualProbe, MemoryChange, MemoryGuard, MemoryGuardConfig, MemoryLevel, MemoryProbe, MemoryReading,
};
pub use process::ProcessProbe;
pub use stats::{CallStats, CallStatsSnapshot};

use crate::error::{Error, ErrorKind, Result};
use crate::profile::{Op, Profiler};

/// Whether an error counts against a worker's circuit breaker.
///
/// A worker's own *fatal* error (e.g. "order rejected") is a business
/// answer, not ill health, and does not count; traps, timeouts, resource
/// limits, garbage output and retryable worker errors do. Rejections by the
/// limits themselves (`Overloaded`, `CircuitOpen`) and bad input do not.
pub fn counts_against_breaker(err: &Error) -> bool {
    match err.kind() {
        ErrorKind::Worker => err.is_retryable(),
        ErrorKind::InvalidInput | ErrorKind::Overloaded | ErrorKind::CircuitOpen | ErrorKind::Closed => false,
        _ => true,
    }
}

/// Limits of one worker's calls. Defaults: 64 concurrent, 1024 queued,
/// 30 s timeout, breaker with [`BreakerConfig::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GuardConfig {
    /// Calls of this worker running at once.
    pub max_concurrent: usize,
    /// Calls allowed to wait for a slot; beyond → `Overloaded`.
    pub max_queued: usize,
    /// Longest a call may run; `None` for no limit.
    pub timeout: Option<Duration>,
    /// Circuit breaker settings; `None` disables the breaker.
    pub breaker: Option<BreakerConfig>,
    /// Adapt the concurrency between a floor and `max_concurrent` to the
    /// calls' outcomes (AIMD, see [`aimd`]); `None` (the default): a fixed
    /// `max_concurrent`.
    pub adaptive: Option<AdaptiveConfig>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            max_concurrent: 64,
            max_queued: 1024,
            timeout: Some(Duration::from_secs(30)),
            breaker: Some(BreakerConfig::default()),
            adaptive: None,
        }
    }
}

impl GuardConfig {
    /// Sets the concurrency bound.
    #[must_use]
    pub fn with_max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n;
        self
    }
    /// Sets the wait-queue bound.
    #[must_use]
    pub fn with_max_queued(mut self, n: usize) -> Self {
        self.max_queued = n;
        self
    }
    /// Sets the timeout.
    #[must_use]
    pub fn with_timeout(mut self, t: Option<Duration>) -> Self {
        self.timeout = t;
        self
    }
    /// Sets the breaker.
    #[must_use]
    pub fn with_breaker(mut self, b: Option<BreakerConfig>) -> Self {
        self.breaker = b;
        self
    }
    /// Makes the concurrency adaptive (or fixed again, with `None`).
    #[must_use]
    pub fn with_adaptive(mut self, adaptive: Option<AdaptiveConfig>) -> Self {
        self.adaptive = adaptive;
        self
    }
}

/// A call in progress. Dropped before it ended, it was cut off by its
/// caller (a step's own timeout fires before the guard's when the call
/// waited for its permit): counted as a timed-out call, so the stats, the
/// adaptive limit and the profiler still see it.
struct Running<'a> {
    guard: &'a Guard,
    start: Instant,
    over: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.over {
            self.guard.ended(self.start.elapsed(), Some(ErrorKind::Timeout));
        }
    }
}

/// The resilience stack of one worker.
#[derive(Debug)]
pub struct Guard {
    name: String,
    breaker: Option<Arc<CircuitBreaker>>,
    local: ConcurrencyLimit,
    global: Option<Arc<ConcurrencyLimit>>,
    timeout: Option<Duration>,
    stats: CallStats,
    profiler: Profiler,
}

impl Guard {
    /// A guard for worker `name`; `global` is the runtime-wide limit shared by
    /// every worker (if any); `clock` drives the breaker.
    pub fn new(
        name: impl Into<String>,
        config: &GuardConfig,
        global: Option<Arc<ConcurrencyLimit>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let name = name.into();
        Guard {
            breaker: config
                .breaker
                .clone()
                .map(|b| Arc::new(CircuitBreaker::with_clock(name.clone(), b, clock))),
            local: match &config.adaptive {
                Some(a) => ConcurrencyLimit::adaptive(
                    name.clone(),
                    config.max_concurrent,
                    config.max_queued,
                    a.clone(),
                ),
                None => ConcurrencyLimit::new(name.clone(), config.max_concurrent, config.max_queued),
            },
            global,
            timeout: config.timeout,
            stats: CallStats::default(),
            profiler: Profiler::new(),
            name,
        }
    }

    /// Times its permit waits and calls into `profiler`
    /// ([`Op::PermitWait`], [`Op::Call`]).
    #[must_use]
    pub fn with_profiler(mut self, profiler: Profiler) -> Self {
        self.profiler = profiler;
        self
    }

    /// Runs `call` through the stack.
    pub async fn call<T, F>(&self, call: F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let permit = match self.breaker.as_ref().map(|b| b.try_acquire()).transpose() {
            Ok(p) => p,
            Err(e) => {
                self.stats.record_rejected();
                return Err(e);
            }
        };
        let waiting = self.profiler.start();
        let _local = self
            .local
            .acquire()
            .await
            .inspect_err(|_| self.stats.record_rejected())?;
        let _global = match &self.global {
            Some(g) => Some(g.acquire().await.inspect_err(|_| self.stats.record_rejected())?),
            None => None,
        };
        self.profiler.finish(Op::PermitWait, &self.name, waiting);
        let mut running = Running {
            guard: self,
            start: Instant::now(),
            over: false,
        };
        let result = match self.timeout {
            Some(limit) => tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
                Err(Error::new(ErrorKind::Timeout, "worker call exceeded its timeout")
                    .with_context("worker", &self.name)
                    .with_context("timeout_ms", limit.as_millis()))
            }),
            None => call.await,
        };
        running.over = true;
        self.ended(running.start.elapsed(), result.as_ref().err().map(Error::kind));
        if let Some(permit) = permit {
            match &result {
                Ok(_) => permit.success(),
                Err(e) if counts_against_breaker(e) => permit.failure(),
                Err(_) => drop(permit),
            }
        }
        result
    }

    /// Counts a call that ran for `took` and failed with `failed` (or
    /// succeeded): its stats, the adaptive limit, the profiler.
    fn ended(&self, took: Duration, failed: Option<ErrorKind>) {
        self.stats.record(failed.is_none(), took);
        self.local.observe(took, failed);
        self.profiler.record(Op::Call, &self.name, took);
    }

    /// The worker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The breaker's state (`Closed` when there is no breaker).
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.as_ref().map_or(BreakerState::Closed, |b| b.state())
    }

    /// The per-worker concurrency limit (in use, queued, high-water mark).
    pub fn limit(&self) -> &ConcurrencyLimit {
        &self.local
    }

    /// Counts and latency percentiles so far.
    pub fn stats(&self) -> CallStatsSnapshot {
        self.stats.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(clock: &Arc<ManualClock>) -> Guard {
        let config = GuardConfig::default()
            .with_max_concurrent(2)
            .with_max_queued(0)
            .with_timeout(Some(Duration::from_millis(50)))
            .with_breaker(Some(BreakerConfig::default().with_failure_threshold(2)));
        Guard::new("w", &config, None, clock.clone())
    }

    #[tokio::test]
    async fn a_call_cut_off_by_its_caller_still_counts_as_timed_out() {
        let config = GuardConfig::default()
            .with_max_concurrent(8)
            .with_timeout(Some(Duration::from_secs(30)))
            .with_adaptive(Some(AdaptiveConfig::default().with_initial(Some(8))));
        let profiler = Profiler::enabled_now();
        let g = Guard::new("w", &config, None, Arc::new(ManualClock::new())).with_profiler(profiler.clone());
        // The caller's own deadline (a step timeout) is shorter than the guard's.
        let cut = tokio::time::timeout(
            Duration::from_millis(10),
            g.call(std::future::pending::<Result<()>>()),
        )
        .await;
        assert!(cut.is_err(), "the caller gave up first");
        let stats = g.stats();
        assert_eq!((stats.executions, stats.failures), (1, 1));
        assert_eq!(g.limit().current(), 7, "the adaptive limit saw a timeout");
        let (rows, _) = profiler.timings();
        assert!(rows.iter().any(|t| t.op == Op::Call && t.count == 1), "{rows:?}");
    }

    #[tokio::test]
    async fn timeouts_count_against_the_breaker_and_fatal_errors_do_not() {
        let clock = Arc::new(ManualClock::new());
        let g = guard(&clock);
        let fatal =
            || async { Err::<(), _>(Error::new(ErrorKind::Worker, "order rejected").with_retryable(false)) };
        for _ in 0..5 {
            assert_eq!(
                g.call(fatal()).await.map_err(|e| e.kind()),
                Err(ErrorKind::Worker)
            );
        }
        assert_eq!(g.breaker_state(), BreakerState::Closed);
        for _ in 0..2 {
            let err = g
                .call(std::future::pending::<Result<()>>())
                .await
                .expect_err("timeout");
            assert_eq!(err.kind(), ErrorKind::Timeout);
            assert_eq!(err.context_value("timeout_ms"), Some("50"));
        }
        assert_eq!(g.breaker_state(), BreakerState::Open);
        let err = g.call(async { Ok(()) }).await.expect_err("open");
        assert_eq!(err.kind(), ErrorKind::CircuitOpen);
        clock.advance(Duration::from_secs(60));
        g.call(async { Ok(()) }).await.expect("probe passes");
        assert_eq!(g.breaker_state(), BreakerState::Closed);
        let s = g.stats();
        assert_eq!((s.executions, s.successes, s.failures, s.rejected), (8, 1, 7, 1));
    }

    #[tokio::test]
    async fn overload_is_typed_and_the_bound_holds() {
        let clock = Arc::new(ManualClock::new());
        let g = Arc::new(guard(&clock));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
        let blocker =
            |g: Arc<Guard>, rx: Arc<tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>>| {
                tokio::spawn(async move {
                    g.call(async move {
                        if let Some(rx) = rx.lock().await.take() {
                            let _ = rx.await;
                        } else {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Ok(())
                    })
                    .await
                })
            };
        let a = blocker(g.clone(), rx.clone());
        let b = blocker(g.clone(), rx.clone());
        while g.limit().in_use() < 2 {
            tokio::task::yield_now().await;
        }
        let err = g.call(async { Ok(()) }).await.expect_err("overloaded");
        assert_eq!(err.kind(), ErrorKind::Overloaded);
        let _ = tx.send(());
        a.await.expect("join").expect("a");
        b.await.expect("join").expect("b");
        assert_eq!(g.limit().high_water(), 2);
    }
}
