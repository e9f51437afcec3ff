//! The memory guard: load shedding before the process is killed for its
//! memory.
//!
//! A [`MemoryGuard`] samples a [`MemoryProbe`] (the process's resident set
//! against its limit, with the WebAssembly linear memory and cache bytes it
//! holds, for the record) and keeps a [`MemoryLevel`]:
//!
//! * **normal** below `warn`;
//! * **warn** from `warn` of the limit: logged;
//! * **shed** from `shed`: new transactions are refused with a typed,
//!   retryable `Overloaded` error, and the instance takes no new commands
//!   (they stay queued for other instances); results and timers still land,
//!   since finishing transactions is what frees memory. It stays shedding
//!   until usage falls below `resume`.
//!
//! Each change of level is logged and returned by
//! [`MemoryGuard::sample_change`]; the orchestrator samples it every
//! `interval`
//! ([`Orchestrator::guard_memory`](crate::orchestrator::Orchestrator::guard_memory))
//! and announces each change as an `instance.*` lifecycle event. Tests
//! inject readings through their own probe.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

/// One sample of the process's memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MemoryReading {
    /// Resident set size.
    pub rss: u64,
    /// What the process may use: its cgroup's limit, or the machine's
    /// memory, or a configured limit.
    pub limit: u64,
    /// WebAssembly linear memory held by live instances (part of `rss`).
    pub wasm: u64,
    /// Bytes in the store cache (part of `rss`).
    pub cache: u64,
}

impl MemoryReading {
    /// A reading of `rss` against `limit` (no breakdown).
    pub fn new(rss: u64, limit: u64) -> Self {
        MemoryReading {
            rss,
            limit,
            wasm: 0,
            cache: 0,
        }
    }

    /// The same with its WebAssembly and cache shares.
    #[must_use]
    pub fn with_parts(mut self, wasm: u64, cache: u64) -> Self {
        self.wasm = wasm;
        self.cache = cache;
        self
    }

    /// `rss / limit` (0 for an unknown limit).
    pub fn ratio(&self) -> f64 {
        if self.limit == 0 {
            0.0
        } else {
            self.rss as f64 / self.limit as f64
        }
    }
}

impl std::fmt::Display for MemoryReading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        write!(
            f,
            "resident {:.0} MiB of {:.0} MiB ({:.0}%; WebAssembly {:.0} MiB, cache {:.0} MiB)",
            mib(self.rss),
            mib(self.limit),
            self.ratio() * 100.0,
            mib(self.wasm),
            mib(self.cache)
        )
    }
}

/// Where readings come from.
pub trait MemoryProbe: Send + Sync + 'static {
    /// The current reading; `None` when it cannot be read (the guard then
    /// keeps its level).
    fn read(&self) -> Option<MemoryReading>;
}

/// A probe whose readings are set by hand: a resident size against a
/// fixed limit (for tests, and for hosts that measure memory themselves).
#[derive(Debug, Clone)]
pub struct ManualProbe {
    rss: std::sync::Arc<std::sync::atomic::AtomicU64>,
    limit: u64,
}

impl ManualProbe {
    /// Readings of 0 bytes against `limit`.
    pub fn new(limit: u64) -> Self {
        ManualProbe {
            rss: std::sync::Arc::default(),
            limit,
        }
    }

    /// The resident size the next readings report (every clone sees it).
    pub fn set(&self, rss: u64) {
        self.rss.store(rss, Ordering::SeqCst);
    }
}

impl MemoryProbe for ManualProbe {
    fn read(&self) -> Option<MemoryReading> {
        Some(MemoryReading::new(self.rss.load(Ordering::SeqCst), self.limit))
    }
}

/// The guard's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MemoryLevel {
    /// Below `warn`.
    Normal = 0,
    /// At or above `warn`: logged, nothing refused.
    Warn = 1,
    /// At or above `shed` (and not yet below `resume`): new work refused.
    Shed = 2,
}

impl MemoryLevel {
    /// `normal`, `warn` or `shed`.
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryLevel::Normal => "normal",
            MemoryLevel::Warn => "warn",
            MemoryLevel::Shed => "shed",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            2 => MemoryLevel::Shed,
            1 => MemoryLevel::Warn,
            _ => MemoryLevel::Normal,
        }
    }
}

/// A move of the guard's level, and the reading that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryChange {
    /// The level before.
    pub from: MemoryLevel,
    /// The level now.
    pub to: MemoryLevel,
    /// The reading that moved it.
    pub reading: MemoryReading,
}

/// Thresholds, as fractions of the limit.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MemoryGuardConfig {
    /// Log from here (default 0.80).
    pub warn: f64,
    /// Shed load from here (default 0.90).
    pub shed: f64,
    /// Stop shedding below this (default 0.85): the gap keeps the guard
    /// from flapping around `shed`.
    pub resume: f64,
    /// How often the orchestrator samples (default 1 s).
    pub interval: Duration,
}

impl Default for MemoryGuardConfig {
    fn default() -> Self {
        MemoryGuardConfig {
            warn: 0.80,
            shed: 0.90,
            resume: 0.85,
            interval: Duration::from_secs(1),
        }
    }
}

impl MemoryGuardConfig {
    /// Thresholds `warn`, `shed` and `resume`.
    #[must_use]
    pub fn with_thresholds(mut self, warn: f64, shed: f64, resume: f64) -> Self {
        self.warn = warn;
        self.shed = shed;
        self.resume = resume;
        self
    }

    /// The sampling interval.
    #[must_use]
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Checks `0 < resume < shed`, `0 < warn <= shed <= 1` and a non-zero
    /// interval; `Config` naming the value otherwise.
    pub fn validate(&self) -> Result<()> {
        let ok = |v: f64| v.is_finite() && v > 0.0 && v <= 1.0;
        let bad = |what: String| Err(Error::new(ErrorKind::Config, what).with_operation("memory_guard"));
        if !ok(self.warn) || !ok(self.shed) || !ok(self.resume) {
            return bad(format!(
                "memory thresholds are fractions of the limit in (0, 1]: warn {}, shed {}, resume {}",
                self.warn, self.shed, self.resume
            ));
        }
        if self.warn > self.shed {
            return bad(format!(
                "memory warn ({}) must not exceed shed ({})",
                self.warn, self.shed
            ));
        }
        if self.resume >= self.shed {
            return bad(format!(
                "memory resume ({}) must be below shed ({}), or shedding never ends",
                self.resume, self.shed
            ));
        }
        if self.interval.is_zero() {
            return bad("the memory sampling interval must not be zero".into());
        }
        Ok(())
    }
}

/// Samples memory and says whether to shed load. Share as `Arc`.
pub struct MemoryGuard {
    config: MemoryGuardConfig,
    probe: Box<dyn MemoryProbe>,
    level: AtomicU8,
    last: Mutex<Option<MemoryReading>>,
}

impl std::fmt::Debug for MemoryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryGuard")
            .field("config", &self.config)
            .field("level", &self.level())
            .field("last", &self.last())
            .finish_non_exhaustive()
    }
}

impl MemoryGuard {
    /// A guard over `probe` (not sampled yet: it starts normal).
    ///
    /// # Errors
    /// `Config` for inconsistent thresholds ([`MemoryGuardConfig::validate`]).
    pub fn new(config: MemoryGuardConfig, probe: impl MemoryProbe) -> Result<Self> {
        config.validate()?;
        Ok(MemoryGuard {
            config,
            probe: Box::new(probe),
            level: AtomicU8::new(MemoryLevel::Normal as u8),
            last: Mutex::new(None),
        })
    }

    /// Its settings.
    pub fn config(&self) -> &MemoryGuardConfig {
        &self.config
    }

    /// The level of the last sample.
    pub fn level(&self) -> MemoryLevel {
        MemoryLevel::from_u8(self.level.load(Ordering::Acquire))
    }

    /// Whether new work is refused now.
    pub fn shedding(&self) -> bool {
        self.level() == MemoryLevel::Shed
    }

    /// The last reading.
    pub fn last(&self) -> Option<MemoryReading> {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the probe and moves the level (logging each change, and
    /// exporting the reading as metrics). Returns the new level.
    pub fn sample(&self) -> MemoryLevel {
        self.measure().0
    }

    /// As [`sample`](Self::sample), and returns the change when the level
    /// moved (`None` when it stayed, or the probe could not be read).
    pub fn sample_change(&self) -> Option<MemoryChange> {
        self.measure().1
    }

    fn measure(&self) -> (MemoryLevel, Option<MemoryChange>) {
        let Some(reading) = self.probe.read() else {
            return (self.level(), None);
        };
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(reading);
        let ratio = reading.ratio();
        // Once shedding, only falling below `resume` ends it.
        let still_shedding = self.level() == MemoryLevel::Shed && ratio >= self.config.resume;
        let after = if still_shedding || ratio >= self.config.shed {
            MemoryLevel::Shed
        } else if ratio >= self.config.warn {
            MemoryLevel::Warn
        } else {
            MemoryLevel::Normal
        };
        // The level this sample replaced (another sampler may have moved it
        // since it was read above).
        let before = MemoryLevel::from_u8(self.level.swap(after as u8, Ordering::AcqRel));
        metrics::gauge!("multiagents_memory_level").set(f64::from(after as u8));
        metrics::gauge!("multiagents_memory_limit_bytes").set(reading.limit as f64);
        metrics::gauge!("multiagents_memory_used_ratio").set(ratio);
        metrics::gauge!("multiagents_memory_resident_bytes").set(reading.rss as f64);
        metrics::gauge!("multiagents_memory_wasm_bytes").set(reading.wasm as f64);
        metrics::gauge!("multiagents_memory_cache_bytes").set(reading.cache as f64);
        if after == before {
            return (after, None);
        }
        match after {
            MemoryLevel::Shed => {
                tracing::warn!(%reading, "memory above the shed threshold: refusing new transactions and commands")
            }
            MemoryLevel::Warn => {
                tracing::warn!(%reading, from = before.as_str(), "memory above the warn threshold")
            }
            MemoryLevel::Normal => {
                tracing::info!(%reading, from = before.as_str(), "memory back to normal")
            }
        }
        let change = MemoryChange {
            from: before,
            to: after,
            reading,
        };
        (after, Some(change))
    }

    /// `Ok` unless shedding; then a retryable `Overloaded` error for
    /// operation `op`, saying why (and counted).
    pub fn admit(&self, op: &'static str) -> Result<()> {
        if !self.shedding() {
            return Ok(());
        }
        metrics::counter!("multiagents_shed_total", "what" => op).increment(1);
        let why = self.last().map_or_else(
            || "memory is above the shed threshold".to_string(),
            |r| r.to_string(),
        );
        Err(Error::new(
            ErrorKind::Overloaded,
            format!("shedding load: {why}; retry later or on another instance"),
        )
        .with_operation(op))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_thresholds_with_a_gap_before_resuming() {
        let fake = ManualProbe::new(1_000);
        let guard = MemoryGuard::new(MemoryGuardConfig::default(), fake.clone()).expect("guard");
        assert_eq!(guard.level(), MemoryLevel::Normal, "not sampled yet");
        for (rss, want) in [
            (500, MemoryLevel::Normal),
            (800, MemoryLevel::Warn),
            (899, MemoryLevel::Warn),
            (900, MemoryLevel::Shed),
            (870, MemoryLevel::Shed),
            (850, MemoryLevel::Shed),
            (849, MemoryLevel::Warn),
            (950, MemoryLevel::Shed),
            (100, MemoryLevel::Normal),
        ] {
            fake.set(rss);
            assert_eq!(guard.sample(), want, "at {rss}/1000");
            assert_eq!(guard.shedding(), want == MemoryLevel::Shed);
        }
        assert_eq!(guard.last(), Some(MemoryReading::new(100, 1_000)));
    }

    #[test]
    fn each_change_of_level_is_returned_once_with_its_reading() {
        let fake = ManualProbe::new(1_000);
        let guard = MemoryGuard::new(MemoryGuardConfig::default(), fake.clone()).expect("guard");
        let mut changes = Vec::new();
        for rss in [100, 820, 830, 950, 860, 300, 300] {
            fake.set(rss);
            if let Some(c) = guard.sample_change() {
                changes.push((c.from, c.to, c.reading.rss));
            }
        }
        use MemoryLevel::{Normal, Shed, Warn};
        assert_eq!(
            changes,
            vec![(Normal, Warn, 820), (Warn, Shed, 950), (Shed, Normal, 300)]
        );
    }

    #[test]
    fn shedding_refuses_with_a_retryable_overloaded_error_saying_why() {
        let fake = ManualProbe::new(1_000);
        let guard = MemoryGuard::new(MemoryGuardConfig::default(), fake.clone()).expect("guard");
        assert!(guard.admit("execute").is_ok());
        fake.set(990);
        guard.sample();
        let err = guard.admit("execute").expect_err("shedding");
        assert_eq!(err.kind(), ErrorKind::Overloaded);
        assert!(err.is_retryable());
        assert!(err.message().contains("99%"), "{err}");
        fake.set(10);
        guard.sample();
        assert!(guard.admit("execute").is_ok());
    }

    #[test]
    fn an_unreadable_probe_keeps_the_level() {
        struct Blind;
        impl MemoryProbe for Blind {
            fn read(&self) -> Option<MemoryReading> {
                None
            }
        }
        let guard = MemoryGuard::new(MemoryGuardConfig::default(), Blind).expect("guard");
        assert_eq!(guard.sample(), MemoryLevel::Normal);
        assert_eq!(guard.last(), None);
    }

    #[test]
    fn inconsistent_thresholds_are_refused() {
        for (warn, shed, resume) in [
            (0.9, 0.8, 0.7),
            (0.8, 0.9, 0.9),
            (0.0, 0.9, 0.8),
            (0.8, 1.5, 0.8),
            (f64::NAN, 0.9, 0.8),
        ] {
            let config = MemoryGuardConfig::default().with_thresholds(warn, shed, resume);
            let err = MemoryGuard::new(config, ManualProbe::new(1_000)).expect_err("refused");
            assert_eq!(err.kind(), ErrorKind::Config, "{warn} {shed} {resume}");
        }
        let zero = MemoryGuardConfig::default().with_interval(Duration::ZERO);
        assert!(zero.validate().is_err());
    }
}
