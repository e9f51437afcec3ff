//! `[scaling]`: the bounds and targets of the autoscaling advisor (feature
//! `admin`; the model is in `crate::scaling`). The advisor runs while the
//! admin listener does.

use std::time::Duration;

use serde::Deserialize;

use super::source::{Invalid, KeyPath};

/// `[scaling]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ScalingSection {
    /// Fewest instances advised (1).
    pub min_instances: u32,
    /// Most instances advised (100).
    pub max_instances: u32,
    /// The share of its cores an instance should use at the advised count
    /// (0.70).
    pub target_cpu: f64,
    /// How soon a backlog should be drained (`"60s"`).
    #[serde(with = "super::values::duration")]
    pub drain: Duration,
    /// How long the need must stay lower before fewer instances are
    /// advised (`"5m"`).
    #[serde(with = "super::values::duration")]
    pub cool_down: Duration,
    /// The memory share above which one more instance is advised (0.80).
    pub memory_high: f64,
}

impl Default for ScalingSection {
    fn default() -> Self {
        ScalingSection {
            min_instances: 1,
            max_instances: 100,
            target_cpu: 0.70,
            drain: Duration::from_secs(60),
            cool_down: Duration::from_secs(300),
            memory_high: 0.80,
        }
    }
}

impl ScalingSection {
    /// The advisor's settings.
    #[cfg(feature = "admin")]
    pub fn advisor_config(&self) -> crate::scaling::AdvisorConfig {
        crate::scaling::AdvisorConfig {
            min: self.min_instances,
            max: self.max_instances,
            target_cpu: self.target_cpu,
            drain: self.drain,
            cool_down: self.cool_down,
            memory_high: self.memory_high,
        }
    }

    /// A line for `config check`.
    pub fn summary(&self) -> String {
        format!(
            "{}–{} instances at {:.0}% CPU, backlog drained in {:?}, down after {:?}",
            self.min_instances,
            self.max_instances,
            self.target_cpu * 100.0,
            self.drain,
            self.cool_down
        )
    }

    pub(crate) fn check(&self) -> Result<(), Invalid> {
        let at = |key: &str| KeyPath::of(&["scaling", key]);
        if self.min_instances == 0 {
            return Err(Invalid::new(
                at("min_instances"),
                "scaling.min_instances must be at least 1",
            ));
        }
        if self.max_instances < self.min_instances {
            return Err(Invalid::new(
                at("max_instances"),
                format!(
                    "scaling.max_instances ({}) is below min_instances ({})",
                    self.max_instances, self.min_instances
                ),
            ));
        }
        for (key, value) in [("target_cpu", self.target_cpu), ("memory_high", self.memory_high)] {
            if !(value > 0.0 && value <= 1.0) {
                return Err(Invalid::new(
                    at(key),
                    format!("scaling.{key} must be a fraction above 0 and at most 1 (got {value})"),
                ));
            }
        }
        if self.drain.is_zero() {
            return Err(Invalid::new(at("drain"), "scaling.drain must be longer than 0s"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(section: ScalingSection) -> String {
        section
            .check()
            .expect_err("refused")
            .into_error()
            .message()
            .to_string()
    }

    #[test]
    fn defaults_pass_and_bad_bounds_are_named() {
        assert!(ScalingSection::default().check().is_ok());
        let why = refused(ScalingSection {
            min_instances: 4,
            max_instances: 2,
            ..ScalingSection::default()
        });
        assert!(
            why.contains("max_instances (2) is below min_instances (4)"),
            "{why}"
        );
        let why = refused(ScalingSection {
            target_cpu: 1.5,
            ..ScalingSection::default()
        });
        assert!(why.contains("target_cpu"), "{why}");
        let why = refused(ScalingSection {
            min_instances: 0,
            ..ScalingSection::default()
        });
        assert!(why.contains("min_instances"), "{why}");
    }

    #[cfg(feature = "admin")]
    #[test]
    fn the_advisor_gets_the_bounds() {
        let section = ScalingSection {
            min_instances: 2,
            max_instances: 8,
            target_cpu: 0.5,
            ..ScalingSection::default()
        };
        let advisor = section.advisor_config();
        assert_eq!((advisor.min, advisor.max, advisor.target_cpu), (2, 8, 0.5));
    }
}
