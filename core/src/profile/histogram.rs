//! A latency histogram for the profiler: log-linear buckets (four
//! per power of two of microseconds, so a quantile is within 25% of the
//! truth), counted with relaxed atomics from any thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Four buckets per power of two from 1 µs; the last holds everything from
/// 2^41 µs (~25 days) up.
const BUCKETS: usize = 164;

/// Counts, total, maximum and the bucketed distribution of one timing.
#[derive(Debug)]
pub(super) struct Histogram {
    count: AtomicU64,
    total_ns: AtomicU64,
    max_ns: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            count: AtomicU64::new(0),
            total_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// What a [`Histogram`] held when it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Summary {
    pub(super) count: u64,
    pub(super) total: Duration,
    pub(super) max: Duration,
    pub(super) p50: Duration,
    pub(super) p99: Duration,
}

impl Histogram {
    pub(super) fn record(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.total_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
        self.buckets[bucket(ns / 1_000)].fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn summary(&self) -> Summary {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let max = Duration::from_nanos(self.max_ns.load(Ordering::Relaxed));
        let seen: u64 = counts.iter().sum();
        // A quantile is its bucket's upper bound, never above the maximum.
        let quantile = |q: f64| {
            let rank = ((seen as f64) * q).ceil().max(1.0) as u64;
            let mut below = 0;
            for (i, c) in counts.iter().enumerate() {
                below += c;
                if below >= rank {
                    return Duration::from_micros(upper_us(i)).min(max);
                }
            }
            max
        };
        Summary {
            count: self.count.load(Ordering::Relaxed),
            total: Duration::from_nanos(self.total_ns.load(Ordering::Relaxed)),
            max,
            p50: quantile(0.50),
            p99: quantile(0.99),
        }
    }
}

/// The bucket of a value in microseconds: 0–3 µs one each, then four per
/// power of two.
fn bucket(us: u64) -> usize {
    if us < 4 {
        return us as usize;
    }
    let log2 = 63 - us.leading_zeros() as usize;
    let sub = ((us >> (log2 - 2)) & 3) as usize;
    (4 * (log2 - 1) + sub).min(BUCKETS - 1)
}

/// The first microsecond value above bucket `b`.
fn upper_us(b: usize) -> u64 {
    if b < 4 {
        return b as u64 + 1;
    }
    let log2 = b / 4 + 1;
    ((4 + (b % 4) as u64) + 1) << (log2 - 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_each_value_once_and_in_order() {
        let mut last = 0;
        for us in 0..100_000u64 {
            let b = bucket(us);
            assert!(b >= last, "bucket of {us} went back");
            assert!(
                us < upper_us(b),
                "{us} µs is above its bucket {b}'s bound {}",
                upper_us(b)
            );
            if b > 0 {
                assert!(us >= upper_us(b - 1), "{us} µs belongs below bucket {b}");
            }
            last = b;
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_a_quarter_of_the_truth() {
        let h = Histogram::default();
        for us in 1..=1_000u64 {
            h.record(Duration::from_micros(us));
        }
        let s = h.summary();
        assert_eq!(s.count, 1_000);
        assert_eq!(s.max, Duration::from_micros(1_000));
        assert_eq!(s.total, Duration::from_micros(500_500));
        for (got, truth) in [(s.p50, 500.0), (s.p99, 990.0)] {
            let got = got.as_micros() as f64;
            assert!(
                got >= truth && got <= truth * 1.25,
                "{got} µs for a true {truth} µs"
            );
        }
    }

    #[test]
    fn an_empty_histogram_reads_zero() {
        let s = Histogram::default().summary();
        assert_eq!(s, Summary::default());
    }
}
