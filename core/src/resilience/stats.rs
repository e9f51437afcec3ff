//! Per-worker call statistics: counts and latency percentiles (HDR histogram).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

/// Live counters of one worker; cheap to update from many tasks.
#[derive(Debug)]
pub struct CallStats {
    executions: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    rejected: AtomicU64,
    latency_us: Mutex<Option<Histogram<u64>>>,
}

impl Default for CallStats {
    fn default() -> Self {
        CallStats {
            executions: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            // 1 µs .. 1 h at 2 significant figures: a few KiB.
            latency_us: Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 2).ok()),
        }
    }
}

impl CallStats {
    /// Records a call that ran, with its outcome and duration.
    pub fn record(&self, ok: bool, elapsed: Duration) {
        self.executions.fetch_add(1, Ordering::Relaxed);
        if ok {
            self.successes.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        let us = (elapsed.as_micros() as u64).clamp(1, 3_600_000_000);
        if let Some(h) = self.latency_us.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            h.saturating_record(us);
        }
    }

    /// Records a call refused before it ran (overloaded, circuit open).
    pub fn record_rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// A consistent-enough copy of the counters and percentiles.
    pub fn snapshot(&self) -> CallStatsSnapshot {
        let (p50, p95, p99) = match self.latency_us.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(h) if !h.is_empty() => (
                Duration::from_micros(h.value_at_quantile(0.50)),
                Duration::from_micros(h.value_at_quantile(0.95)),
                Duration::from_micros(h.value_at_quantile(0.99)),
            ),
            _ => (Duration::ZERO, Duration::ZERO, Duration::ZERO),
        };
        CallStatsSnapshot {
            executions: self.executions.load(Ordering::Relaxed),
            successes: self.successes.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            p50,
            p95,
            p99,
        }
    }
}

/// A snapshot of [`CallStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CallStatsSnapshot {
    /// Calls that ran.
    pub executions: u64,
    /// Calls that returned `Ok`.
    pub successes: u64,
    /// Calls that returned an error.
    pub failures: u64,
    /// Calls refused before running (overloaded, circuit open).
    pub rejected: u64,
    /// Median latency.
    pub p50: Duration,
    /// 95th percentile latency.
    pub p95: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentiles() {
        let s = CallStats::default();
        for i in 1..=100u64 {
            s.record(i % 10 != 0, Duration::from_micros(i * 10));
        }
        s.record_rejected();
        let snap = s.snapshot();
        assert_eq!(
            (snap.executions, snap.successes, snap.failures, snap.rejected),
            (100, 90, 10, 1)
        );
        assert!(
            snap.p50 >= Duration::from_micros(490) && snap.p50 <= Duration::from_micros(510),
            "{snap:?}"
        );
        assert!(snap.p99 >= Duration::from_micros(980), "{snap:?}");
    }
}
