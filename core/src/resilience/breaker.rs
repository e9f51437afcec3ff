//! A per-worker circuit breaker: closed → open after `failure_threshold`
//! consecutive failures → half-open after `cool_down` (up to
//! `half_open_probes` trial calls) → closed after that many successes, or
//! open again on a probe failure.
//!
//! Results of calls that started before the last state change (a call begun
//! while closed that ends after the breaker opened) do not move the state:
//! each permit carries the generation it was issued in.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::clock::{Clock, SystemClock};
use crate::error::{Error, ErrorKind, Result};

/// Breaker settings. Defaults: 5 failures, 60 s cool-down, 1 probe.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long the breaker stays open before letting probes through.
    pub cool_down: Duration,
    /// Trial calls allowed at once while half-open; that many successes close it.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            cool_down: Duration::from_secs(60),
            half_open_probes: 1,
        }
    }
}

impl BreakerConfig {
    /// Sets the failure threshold (minimum 1).
    #[must_use]
    pub fn with_failure_threshold(mut self, n: u32) -> Self {
        self.failure_threshold = n.max(1);
        self
    }
    /// Sets the cool-down.
    #[must_use]
    pub fn with_cool_down(mut self, d: Duration) -> Self {
        self.cool_down = d;
        self
    }
    /// Sets the number of half-open probes (minimum 1).
    #[must_use]
    pub fn with_half_open_probes(mut self, n: u32) -> Self {
        self.half_open_probes = n.max(1);
        self
    }
}

/// The externally visible state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass; failures are counted.
    Closed,
    /// Calls are rejected with `CircuitOpen` until the cool-down ends.
    Open,
    /// A limited number of probe calls pass.
    HalfOpen,
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        })
    }
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probes: u32, successes: u32 },
}

#[derive(Debug)]
struct Inner {
    state: State,
    generation: u64,
}

/// A circuit breaker; share it with `Arc`.
pub struct CircuitBreaker {
    name: String,
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("state", &self.state())
            .finish()
    }
}

impl CircuitBreaker {
    /// A closed breaker named `name` (used in errors), on the system clock.
    pub fn new(name: impl Into<String>, config: BreakerConfig) -> Self {
        Self::with_clock(name, config, Arc::new(SystemClock))
    }

    /// A closed breaker reading time from `clock`.
    pub fn with_clock(name: impl Into<String>, config: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        CircuitBreaker {
            name: name.into(),
            config,
            clock,
            inner: Mutex::new(Inner {
                state: State::Closed { failures: 0 },
                generation: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current state (an open breaker whose cool-down has passed reports
    /// `HalfOpen`).
    pub fn state(&self) -> BreakerState {
        let inner = self.lock();
        match inner.state {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if self.clock.now() >= until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks to make a call. `Err(CircuitOpen)` (retryable, with the time left)
    /// when open or when all half-open probes are taken.
    pub fn try_acquire(self: &Arc<Self>) -> Result<BreakerPermit> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let probe = match inner.state {
            State::Closed { .. } => false,
            State::Open { until } if now >= until => {
                inner.state = State::HalfOpen {
                    probes: 1,
                    successes: 0,
                };
                inner.generation += 1;
                true
            }
            State::Open { until } => {
                return Err(self.open_error(until.saturating_duration_since(now)));
            }
            State::HalfOpen { ref mut probes, .. } if *probes < self.config.half_open_probes => {
                *probes += 1;
                true
            }
            State::HalfOpen { .. } => return Err(self.open_error(Duration::ZERO)),
        };
        Ok(BreakerPermit {
            breaker: Arc::clone(self),
            generation: inner.generation,
            probe,
            done: false,
        })
    }

    fn open_error(&self, left: Duration) -> Error {
        Error::new(
            ErrorKind::CircuitOpen,
            "circuit breaker is open: calls are rejected until it cools down",
        )
        .with_context("worker", &self.name)
        .with_context("retry_after_ms", left.as_millis())
    }

    fn record(&self, generation: u64, probe: bool, outcome: Option<bool>) {
        let now = self.clock.now();
        let mut inner = self.lock();
        if inner.generation != generation {
            return; // the state changed since this call began
        }
        let threshold = self.config.failure_threshold;
        let next = match (&mut inner.state, outcome) {
            (State::Closed { failures }, Some(true)) => {
                *failures = 0;
                None
            }
            (State::Closed { failures }, Some(false)) => {
                *failures += 1;
                (*failures >= threshold).then_some(State::Open {
                    until: now + self.config.cool_down,
                })
            }
            (State::HalfOpen { probes, .. }, None) if probe => {
                *probes = probes.saturating_sub(1);
                None
            }
            (State::HalfOpen { successes, .. }, Some(true)) if probe => {
                *successes += 1;
                (*successes >= self.config.half_open_probes).then_some(State::Closed { failures: 0 })
            }
            (State::HalfOpen { .. }, Some(false)) if probe => Some(State::Open {
                until: now + self.config.cool_down,
            }),
            _ => None,
        };
        if let Some(state) = next {
            tracing::info!(worker = %self.name, from = ?inner.state, to = ?state, "circuit breaker state change");
            inner.state = state;
            inner.generation += 1;
        }
    }
}

/// Leave to make one call; report how it went with [`success`](Self::success)
/// or [`failure`](Self::failure). Dropping it unreported (a cancelled call)
/// counts as neither.
#[must_use = "report the call's outcome with success() or failure()"]
pub struct BreakerPermit {
    breaker: Arc<CircuitBreaker>,
    generation: u64,
    probe: bool,
    done: bool,
}

impl BreakerPermit {
    /// The call succeeded.
    pub fn success(mut self) {
        self.done = true;
        self.breaker.record(self.generation, self.probe, Some(true));
    }

    /// The call failed in a way that counts against the worker.
    pub fn failure(mut self) {
        self.done = true;
        self.breaker.record(self.generation, self.probe, Some(false));
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.record(self.generation, self.probe, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resilience::clock::ManualClock;

    fn breaker(clock: &Arc<ManualClock>) -> Arc<CircuitBreaker> {
        let config = BreakerConfig::default()
            .with_failure_threshold(3)
            .with_cool_down(Duration::from_secs(60))
            .with_half_open_probes(2);
        Arc::new(CircuitBreaker::with_clock("w", config, clock.clone()))
    }

    fn fail(b: &Arc<CircuitBreaker>) {
        b.try_acquire().expect("closed").failure();
    }

    #[test]
    fn opens_after_threshold_and_rejects_fast() {
        let clock = Arc::new(ManualClock::new());
        let b = breaker(&clock);
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
        b.try_acquire().expect("closed").success(); // resets the count
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        let err = b.try_acquire().err().expect("open");
        assert_eq!(err.kind(), ErrorKind::CircuitOpen);
        assert!(err.is_retryable());
        assert_eq!(err.context_value("retry_after_ms"), Some("60000"));
    }

    #[test]
    fn half_opens_after_cool_down_and_closes_after_probe_successes() {
        let clock = Arc::new(ManualClock::new());
        let b = breaker(&clock);
        (0..3).for_each(|_| fail(&b));
        clock.advance(Duration::from_secs(59));
        assert!(b.try_acquire().is_err());
        clock.advance(Duration::from_secs(1));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let p1 = b.try_acquire().expect("probe 1");
        let p2 = b.try_acquire().expect("probe 2");
        assert!(b.try_acquire().is_err(), "only two probes at once");
        p1.success();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        p2.success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn probe_failure_reopens_and_cancelled_probe_frees_its_slot() {
        let clock = Arc::new(ManualClock::new());
        let b = breaker(&clock);
        (0..3).for_each(|_| fail(&b));
        clock.advance(Duration::from_secs(60));
        drop(b.try_acquire().expect("probe"));
        drop(b.try_acquire().expect("probe slot was freed"));
        b.try_acquire().expect("probe").failure();
        assert_eq!(b.state(), BreakerState::Open);
        clock.advance(Duration::from_secs(30));
        assert_eq!(b.state(), BreakerState::Open, "a new cool-down started");
    }

    #[test]
    fn late_results_from_an_older_state_are_ignored() {
        let clock = Arc::new(ManualClock::new());
        let b = breaker(&clock);
        let slow = b.try_acquire().expect("closed");
        (0..3).for_each(|_| fail(&b));
        clock.advance(Duration::from_secs(60));
        let probe = b.try_acquire().expect("probe");
        slow.success(); // began while closed: must not count as a probe
        assert_eq!(b.state(), BreakerState::HalfOpen);
        probe.failure();
        assert_eq!(b.state(), BreakerState::Open);
    }
}
