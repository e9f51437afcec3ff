//! `[memory]`: the memory guard of a runtime (load shedding near the
//! memory limit; see `multiagents_core::resilience::memory`).

use std::time::Duration;

use serde::Deserialize;

use multiagents_core::resilience::MemoryGuardConfig;

use super::source::{Invalid, KeyPath};

/// `[memory]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct MemorySection {
    /// Whether the guard runs (default `true`).
    pub enabled: bool,
    /// The limit the thresholds are fractions of, in MiB (unset: the
    /// process's cgroup limit, else the machine's memory).
    pub limit_mb: Option<u64>,
    /// Log from this fraction of the limit (0.80).
    pub warn: f64,
    /// Shed load from here (0.90): refuse new transactions, take no commands.
    pub shed: f64,
    /// Stop shedding below this (0.85).
    pub resume: f64,
    /// How often memory is sampled (`"1s"`).
    #[serde(with = "super::values::duration")]
    pub interval: Duration,
}

impl Default for MemorySection {
    fn default() -> Self {
        let d = MemoryGuardConfig::default();
        MemorySection {
            enabled: true,
            limit_mb: None,
            warn: d.warn,
            shed: d.shed,
            resume: d.resume,
            interval: d.interval,
        }
    }
}

impl MemorySection {
    /// The guard's settings (`None` when off).
    pub fn guard_config(&self) -> Option<MemoryGuardConfig> {
        self.enabled.then(|| {
            MemoryGuardConfig::default()
                .with_thresholds(self.warn, self.shed, self.resume)
                .with_interval(self.interval)
        })
    }

    /// The configured limit in bytes.
    pub fn limit_bytes(&self) -> Option<u64> {
        self.limit_mb.map(|mb| mb.saturating_mul(1 << 20))
    }

    /// A line for `config check`.
    pub fn summary(&self) -> String {
        if !self.enabled {
            return "no guard".into();
        }
        let limit = self.limit_mb.map_or_else(
            || "the cgroup's or machine's limit".to_string(),
            |mb| format!("{mb} MiB"),
        );
        format!(
            "warn at {:.0}%, shed at {:.0}% (resume below {:.0}%) of {limit}",
            self.warn * 100.0,
            self.shed * 100.0,
            self.resume * 100.0
        )
    }

    pub(crate) fn check(&self) -> Result<(), Invalid> {
        if self.limit_mb == Some(0) {
            return Err(Invalid::new(
                KeyPath::of(&["memory", "limit_mb"]),
                "memory.limit_mb must be at least 1",
            ));
        }
        if let Some(config) = self.guard_config() {
            config
                .validate()
                .map_err(|e| Invalid::new(KeyPath::of(&["memory"]), e.message().to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_on_and_bad_thresholds_are_named() {
        let d = MemorySection::default();
        assert!(d.check().is_ok());
        assert_eq!(d.guard_config(), Some(MemoryGuardConfig::default()));
        assert!(d.summary().contains("shed at 90%"), "{}", d.summary());
        let off = MemorySection {
            enabled: false,
            ..MemorySection::default()
        };
        assert_eq!(off.guard_config(), None);
        let flapping = MemorySection {
            resume: 0.95,
            ..MemorySection::default()
        };
        let why = flapping
            .check()
            .expect_err("refused")
            .into_error()
            .message()
            .to_string();
        assert!(why.contains("resume"), "{why}");
        let zero = MemorySection {
            limit_mb: Some(0),
            ..MemorySection::default()
        };
        assert!(zero.check().is_err());
        assert_eq!(
            MemorySection {
                limit_mb: Some(512),
                ..MemorySection::default()
            }
            .limit_bytes(),
            Some(512 << 20)
        );
    }
}
