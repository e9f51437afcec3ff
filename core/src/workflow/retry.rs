//! [`RetryPolicy`]: how many attempts a step gets and how long to wait
//! between them (exponential backoff, capped, with full jitter).

use std::time::Duration;

/// Attempts and backoff. Default: 3 attempts, 100 ms doubling up to 10 s,
/// jittered.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Total attempts, including the first (1 = no retry).
    pub max_attempts: u32,
    /// Wait before the second attempt.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Growth factor per attempt.
    pub multiplier: f64,
    /// Randomise each wait in `[backoff/2, backoff]` so retries of many
    /// workflows do not arrive in lockstep.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// No retries: one attempt.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// `max_attempts` attempts with `initial` backoff (doubling, jittered).
    pub fn attempts(max_attempts: u32, initial: Duration) -> Self {
        RetryPolicy {
            max_attempts,
            initial_backoff: initial,
            ..Self::default()
        }
    }

    /// Turns jitter off (deterministic waits, for tests).
    #[must_use]
    pub fn without_jitter(mut self) -> Self {
        self.jitter = false;
        self
    }

    /// Whether attempt `failed` (1-based) may be followed by another.
    pub fn can_retry(&self, failed: u32) -> bool {
        failed < self.max_attempts
    }

    /// The wait after attempt `failed` (1-based) fails. `seed` makes the
    /// jitter deterministic per transaction and attempt.
    pub fn backoff(&self, failed: u32, seed: u64) -> Duration {
        let exp = self
            .multiplier
            .max(1.0)
            .powi(failed.saturating_sub(1).min(64) as i32);
        let base = self.initial_backoff.as_secs_f64() * exp;
        let capped = base.min(self.max_backoff.as_secs_f64()).max(0.0);
        let secs = if self.jitter {
            // splitmix64 of the seed → a fraction in [0.5, 1.0].
            let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            capped * (0.5 + 0.5 * (z >> 11) as f64 / (1u64 << 53) as f64)
        } else {
            capped
        };
        Duration::try_from_secs_f64(secs).unwrap_or(self.max_backoff)
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("max_attempts must be at least 1".into());
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(format!(
                "multiplier must be a number >= 1, got {}",
                self.multiplier
            ));
        }
        if self.initial_backoff > self.max_backoff {
            return Err("initial_backoff must not exceed max_backoff".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_capped_and_jittered() {
        let p = RetryPolicy::attempts(5, Duration::from_millis(100)).without_jitter();
        assert_eq!(p.backoff(1, 0), Duration::from_millis(100));
        assert_eq!(p.backoff(2, 0), Duration::from_millis(200));
        assert_eq!(p.backoff(3, 0), Duration::from_millis(400));
        let capped = RetryPolicy {
            max_backoff: Duration::from_millis(300),
            ..p.clone()
        };
        assert_eq!(capped.backoff(5, 0), Duration::from_millis(300));
        let j = RetryPolicy::attempts(5, Duration::from_millis(100));
        for seed in 0..100 {
            let d = j.backoff(2, seed);
            assert!(
                d >= Duration::from_millis(100) && d <= Duration::from_millis(200),
                "{d:?}"
            );
        }
        assert!(p.can_retry(4) && !p.can_retry(5));
        assert!(RetryPolicy { max_attempts: 0, ..p }.validate().is_err());
    }
}
