//! Adaptive concurrency: an AIMD (additive increase, multiplicative
//! decrease) limit that a worker's [`ConcurrencyLimit`](super::ConcurrencyLimit)
//! follows when [`GuardConfig::adaptive`](super::GuardConfig::adaptive) is set.
//!
//! The model is TCP's congestion control, as Netflix's `concurrency-limits`
//! and Temporal's slot tuners apply it to calls:
//!
//! * **Congestion** is a call that timed out (by the guard's timeout, or
//!   cut off by its caller's), or failed as `Overloaded` or `Unavailable`
//!   (not `ResourceLimit`: a guest over its own memory cap or fuel is
//!   about its input, not about load),
//!   or took longer than the latency target, when one is set.
//! * On congestion the limit shrinks to `backoff` × itself (never below
//!   `min`), at most once per window: the calls already running when it
//!   shrank would otherwise shrink it again for the same cause.
//! * After a window of calls without congestion (as many calls as the
//!   limit) it grows by one (never above `max`), but only when the calls
//!   were using at least half of it: an idle worker's limit says nothing
//!   about what it could take.
//!
//! Pure and clock-free: outcomes in, the new limit out, so tests are
//! deterministic.

use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

/// How an adaptive limit moves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AdaptiveConfig {
    /// The floor (default 1).
    pub min: usize,
    /// Where it starts (default: halfway between `min` and the worker's
    /// `max_concurrent`, which is the ceiling).
    pub initial: Option<usize>,
    /// The factor it shrinks by on congestion (default 0.9; in (0, 1)).
    pub backoff: f64,
    /// A call slower than this counts as congestion (default none: only
    /// timeouts, `overloaded` and `unavailable` errors do).
    pub latency_target: Option<Duration>,
}

// Equal when every field is, the factor compared bit for bit (so `Eq`
// holds even for a NaN, which `validate` refuses anyway).
impl PartialEq for AdaptiveConfig {
    fn eq(&self, other: &Self) -> bool {
        self.min == other.min
            && self.initial == other.initial
            && self.backoff.to_bits() == other.backoff.to_bits()
            && self.latency_target == other.latency_target
    }
}

impl Eq for AdaptiveConfig {}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        AdaptiveConfig {
            min: 1,
            initial: None,
            backoff: 0.9,
            latency_target: None,
        }
    }
}

impl AdaptiveConfig {
    /// Sets the floor.
    #[must_use]
    pub fn with_min(mut self, min: usize) -> Self {
        self.min = min;
        self
    }

    /// Sets the latency target.
    #[must_use]
    pub fn with_latency_target(mut self, target: Option<Duration>) -> Self {
        self.latency_target = target;
        self
    }

    /// Sets the factor it shrinks by.
    #[must_use]
    pub fn with_backoff(mut self, backoff: f64) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the starting limit.
    #[must_use]
    pub fn with_initial(mut self, initial: Option<usize>) -> Self {
        self.initial = initial;
        self
    }

    /// Checks it against the ceiling `max` (the worker's `max_concurrent`).
    ///
    /// # Errors
    /// `Config` naming the field: `min` 0 or above `max`, an `initial`
    /// outside `min..=max`, a `backoff` outside (0, 1), a zero target.
    pub fn validate(&self, max: usize) -> Result<()> {
        let bad =
            |field: &str, why: String| Err(Error::new(ErrorKind::Config, why).with_context("field", field));
        if self.min == 0 || self.min > max {
            return bad(
                "min_concurrent",
                format!(
                    "min_concurrent must be between 1 and max_concurrent ({max}), not {}",
                    self.min
                ),
            );
        }
        if let Some(i) = self.initial
            && !(self.min..=max).contains(&i)
        {
            return bad(
                "initial_concurrent",
                format!(
                    "initial_concurrent must be between {} and {max}, not {i}",
                    self.min
                ),
            );
        }
        if !(self.backoff > 0.0 && self.backoff < 1.0) {
            return bad(
                "backoff",
                format!("backoff must be above 0 and below 1, not {}", self.backoff),
            );
        }
        if self.latency_target.is_some_and(|t| t.is_zero()) {
            return bad("latency_target", "latency_target must be longer than 0".into());
        }
        Ok(())
    }
}

/// One finished call, as the limit sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// How long it ran.
    pub took: Duration,
    /// It failed in a way that says the worker or what it calls is
    /// saturated (see [`is_congestion`]).
    pub congested: bool,
    /// Calls running when it finished (itself included).
    pub in_flight: usize,
}

/// Whether an error of `kind` is a sign of saturation.
pub fn is_congestion(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Timeout | ErrorKind::Overloaded | ErrorKind::Unavailable
    )
}

/// The AIMD state of one worker.
#[derive(Debug, Clone)]
pub struct Aimd {
    config: AdaptiveConfig,
    max: usize,
    limit: usize,
    /// Calls seen since the last decrease (`usize::MAX` before the first).
    since_decrease: usize,
    /// Calls seen in the current growth window.
    seen: usize,
    /// Of those, calls that finished with at least half the limit in use.
    busy: usize,
}

impl Aimd {
    /// A limit between `config.min` and `max` (call
    /// [`AdaptiveConfig::validate`] first; out-of-range values are clamped).
    pub fn new(config: AdaptiveConfig, max: usize) -> Self {
        let max = max.max(1);
        let min = config.min.clamp(1, max);
        let limit = config.initial.unwrap_or(min + (max - min) / 2).clamp(min, max);
        Aimd {
            config: AdaptiveConfig { min, ..config },
            max,
            limit,
            since_decrease: usize::MAX,
            seen: 0,
            busy: 0,
        }
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Takes one outcome in; returns the new limit when it changed.
    pub fn observe(&mut self, o: Outcome) -> Option<usize> {
        let before = self.limit;
        self.since_decrease = self.since_decrease.saturating_add(1);
        self.seen += 1;
        if o.in_flight * 2 >= self.limit {
            self.busy += 1;
        }
        let slow = self.config.latency_target.is_some_and(|t| o.took > t);
        if o.congested || slow {
            // A congested window does not grow.
            self.seen = 0;
            self.busy = 0;
            // The calls already running when it shrank carry the same
            // news: no second cut until as many calls have finished.
            if self.since_decrease <= self.limit {
                return None;
            }
            let shrunk = (self.limit as f64 * self.config.backoff).floor() as usize;
            // At small limits the factor rounds back to the limit itself.
            self.limit = shrunk
                .min(before.saturating_sub(1))
                .clamp(self.config.min, self.max);
            self.since_decrease = 0;
        } else if self.seen >= self.limit {
            if self.busy * 2 >= self.seen {
                self.limit = (self.limit + 1).min(self.max);
            }
            self.seen = 0;
            self.busy = 0;
        }
        (self.limit != before).then_some(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(in_flight: usize) -> Outcome {
        Outcome {
            took: Duration::from_millis(10),
            congested: false,
            in_flight,
        }
    }

    fn timeout() -> Outcome {
        Outcome {
            took: Duration::from_secs(5),
            congested: true,
            in_flight: 1,
        }
    }

    #[test]
    fn starts_halfway_and_grows_one_per_busy_window() {
        let mut a = Aimd::new(AdaptiveConfig::default(), 21);
        assert_eq!(a.limit(), 11);
        for _ in 0..10 {
            assert_eq!(a.observe(ok(11)), None);
        }
        assert_eq!(a.observe(ok(11)), Some(12), "a full window without congestion");
        for _ in 0..11 {
            a.observe(ok(12));
        }
        assert_eq!(a.observe(ok(12)), Some(13));
    }

    #[test]
    fn an_idle_worker_does_not_grow() {
        let mut a = Aimd::new(AdaptiveConfig::default(), 64);
        let start = a.limit();
        for _ in 0..1_000 {
            a.observe(ok(1));
        }
        assert_eq!(a.limit(), start, "one call at a time says nothing about more");
    }

    #[test]
    fn congestion_shrinks_by_the_backoff_once_per_window_and_never_below_min() {
        let config = AdaptiveConfig::default().with_min(4).with_initial(Some(40));
        let mut a = Aimd::new(config, 64);
        assert_eq!(a.observe(timeout()), Some(36), "40 × 0.9");
        // The calls that were running carry the same news: no second cut
        // until as many calls as the limit have finished.
        for _ in 0..36 {
            assert_eq!(a.observe(timeout()), None);
        }
        assert_eq!(a.observe(timeout()), Some(32), "a window later it shrinks again");
        for _ in 0..10_000 {
            a.observe(timeout());
        }
        assert_eq!(a.limit(), 4, "the floor");
    }

    #[test]
    fn small_limits_still_shrink_and_grow_to_the_ceiling() {
        let mut a = Aimd::new(AdaptiveConfig::default().with_initial(Some(5)), 8);
        assert_eq!(a.observe(timeout()), Some(4), "floor(5 × 0.9) = 4");
        for _ in 0..1_000 {
            a.observe(ok(8));
        }
        assert_eq!(a.limit(), 8, "the ceiling is max_concurrent");
    }

    #[test]
    fn a_latency_target_makes_slow_calls_count_as_congestion() {
        let config = AdaptiveConfig::default()
            .with_initial(Some(20))
            .with_latency_target(Some(Duration::from_millis(100)));
        let mut a = Aimd::new(config, 32);
        let slow = Outcome {
            took: Duration::from_millis(250),
            congested: false,
            in_flight: 20,
        };
        assert_eq!(a.observe(slow), Some(18));
    }

    #[test]
    fn bad_settings_are_named() {
        let field = |c: AdaptiveConfig| {
            c.validate(16)
                .expect_err("refused")
                .context_value("field")
                .map(str::to_string)
        };
        assert_eq!(
            field(AdaptiveConfig::default().with_min(0)).as_deref(),
            Some("min_concurrent")
        );
        assert_eq!(
            field(AdaptiveConfig::default().with_min(17)).as_deref(),
            Some("min_concurrent")
        );
        assert_eq!(
            field(AdaptiveConfig::default().with_initial(Some(99))).as_deref(),
            Some("initial_concurrent")
        );
        assert_eq!(
            field(AdaptiveConfig::default().with_backoff(1.0)).as_deref(),
            Some("backoff")
        );
        assert_eq!(
            field(AdaptiveConfig::default().with_backoff(f64::NAN)).as_deref(),
            Some("backoff")
        );
        assert!(AdaptiveConfig::default().validate(16).is_ok());
    }

    #[test]
    fn congestion_kinds_are_the_saturation_ones() {
        assert!(is_congestion(ErrorKind::Timeout));
        assert!(
            !is_congestion(ErrorKind::ResourceLimit),
            "a guest over its own memory cap or fuel is about its input, not load"
        );
        assert!(
            !is_congestion(ErrorKind::Worker),
            "a worker's own failure is not load"
        );
        assert!(!is_congestion(ErrorKind::InvalidInput));
    }
}
